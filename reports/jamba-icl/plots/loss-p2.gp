# loss-p2.gp: lines with bands: Training loss: data.task=mqar data.mqar.no_collisions=true
# Redraw after editing: run `gnuplot loss-p2.gp` in this directory; it writes loss-p2.png and loss-p2.svg.
# Data: loss-p2.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Training loss: data.task=mqar data.mqar.no_collisions=true'
set xlabel 'step'
set ylabel 'training loss (nats/token)'
set key top right
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set output 'loss-p2.png'
plot \
    'loss-p2.csv' index 0 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#0072B2' notitle, \
    'loss-p2.csv' index 1 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#E69F00' notitle, \
    'loss-p2.csv' index 2 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#009E73' notitle, \
    'loss-p2.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'loss-p2.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba', \
    'loss-p2.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'hybrid'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'loss-p2.svg'
replot
unset output
