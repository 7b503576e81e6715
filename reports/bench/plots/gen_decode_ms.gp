# gen_decode_ms.gp: lines with bands: Decode latency against tokens generated
# Redraw after editing: run `gnuplot gen_decode_ms.gp` in this directory; it writes gen_decode_ms.png and gen_decode_ms.svg.
# Data: gen_decode_ms.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Decode latency against tokens generated'
set xlabel 'tokens generated'
set ylabel 'ms/token'
set key top left
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set logscale x
set xtics (256, 512, 1024, 2048, 4096)
set output 'gen_decode_ms.png'
plot \
    'gen_decode_ms.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'gen_decode_ms.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba1', \
    'gen_decode_ms.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'mamba2', \
    'gen_decode_ms.csv' index 3 using 2:3 with linespoints lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'jamba', \
    'gen_decode_ms.csv' index 4 using 2:3 with linespoints lc rgb '#CC79A7' lw 2 pt 7 ps 0.6 title 'zamba2'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'gen_decode_ms.svg'
replot
unset output
