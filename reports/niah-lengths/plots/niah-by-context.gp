# niah-by-context.gp: lines with error bars: niah: test accuracy by context (mean over depth)
# Redraw after editing: run `gnuplot niah-by-context.gp` in this directory; it writes niah-by-context.png and niah-by-context.svg.
# Data: niah-by-context.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'niah: test accuracy by context (mean over depth)'
set xlabel 'context length (tokens)'
set ylabel 'test accuracy'
set key bottom left
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set yrange [0:1.02]
set output 'niah-by-context.png'
plot \
    'niah-by-context.csv' index 0 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'hybrid', \
    'niah-by-context.csv' index 1 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'transformer-rope', \
    'niah-by-context.csv' index 2 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'transformer-nope', \
    'niah-by-context.csv' index 3 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'mamba'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'niah-by-context.svg'
replot
unset output
