# gen_ttft.gp: lines with bands: Time to first token against prompt length
# Redraw after editing: run `gnuplot gen_ttft.gp` in this directory; it writes gen_ttft.png and gen_ttft.svg.
# Data: gen_ttft.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Time to first token against prompt length'
set xlabel 'prompt tokens'
set ylabel 'ms'
set key top left
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set logscale x
set xtics (128, 256, 512, 1024, 2048)
set logscale y
set output 'gen_ttft.png'
plot \
    'gen_ttft.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'gen_ttft.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba1', \
    'gen_ttft.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'mamba2', \
    'gen_ttft.csv' index 3 using 2:3 with linespoints lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'jamba', \
    'gen_ttft.csv' index 4 using 2:3 with linespoints lc rgb '#CC79A7' lw 2 pt 7 ps 0.6 title 'zamba2'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'gen_ttft.svg'
replot
unset output
