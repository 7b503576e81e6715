# memory-model_d_model.gp: lines with error bars: training memory (MB) against model.d_model (mean ± sd over seeds)
# Redraw after editing: run `gnuplot memory-model_d_model.gp` in this directory; it writes memory-model_d_model.png and memory-model_d_model.svg.
# Data: memory-model_d_model.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'training memory (MB) against model.d_model (mean ± sd over seeds)'
set xlabel 'model.d_model'
set ylabel 'training memory (MB)'
set key outside right
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set output 'memory-model_d_model.png'
plot \
    'memory-model_d_model.csv' index 0 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'transformer', \
    'memory-model_d_model.csv' index 1 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'hybrid', \
    'memory-model_d_model.csv' index 2 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'mamba'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'memory-model_d_model.svg'
replot
unset output
