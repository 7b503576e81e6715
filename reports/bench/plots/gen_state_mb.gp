# gen_state_mb.gp: lines with bands: State memory against tokens generated
# Redraw after editing: run `gnuplot gen_state_mb.gp` in this directory; it writes gen_state_mb.png and gen_state_mb.svg.
# Data: gen_state_mb.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'State memory against tokens generated'
set xlabel 'tokens generated'
set ylabel 'state MB'
set key top left
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set logscale x
set xtics (256, 512, 1024, 2048, 4096)
set logscale y
set output 'gen_state_mb.png'
plot \
    'gen_state_mb.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'gen_state_mb.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba1', \
    'gen_state_mb.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'mamba2', \
    'gen_state_mb.csv' index 3 using 2:3 with linespoints lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'jamba', \
    'gen_state_mb.csv' index 4 using 2:3 with linespoints lc rgb '#CC79A7' lw 2 pt 7 ps 0.6 title 'zamba2'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'gen_state_mb.svg'
replot
unset output
