# loss.gp: lines with bands: Training loss
# Redraw after editing: run `gnuplot loss.gp` in this directory; it writes loss.png and loss.svg.
# Data: loss.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Training loss'
set xlabel 'step'
set ylabel 'training loss (nats/token)'
set key top right
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set output 'loss.png'
plot \
    'loss.csv' index 0 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#0072B2' notitle, \
    'loss.csv' index 1 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#E69F00' notitle, \
    'loss.csv' index 2 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#009E73' notitle, \
    'loss.csv' index 3 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#D55E00' notitle, \
    'loss.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'mamba1', \
    'loss.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba2', \
    'loss.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'hybrid-mamba1', \
    'loss.csv' index 3 using 2:3 with linespoints lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'hybrid-mamba2'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'loss.svg'
replot
unset output
