# icl-by-shots-p1.gp: lines with error bars: icl: test accuracy by shots, data.task=icl data.mqar.no_collisions=false
# Redraw after editing: run `gnuplot icl-by-shots-p1.gp` in this directory; it writes icl-by-shots-p1.png and icl-by-shots-p1.svg.
# Data: icl-by-shots-p1.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'icl: test accuracy by shots, data.task=icl data.mqar.no_collisions=false'
set xlabel 'shots in the prompt'
set ylabel 'test accuracy'
set key bottom left
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set yrange [0:1.02]
set output 'icl-by-shots-p1.png'
plot \
    'icl-by-shots-p1.csv' index 0 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'icl-by-shots-p1.csv' index 1 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba', \
    'icl-by-shots-p1.csv' index 2 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'hybrid'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'icl-by-shots-p1.svg'
replot
unset output
