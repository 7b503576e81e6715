# valid.gp: lines with bands: Validation
# Redraw after editing: run `gnuplot valid.gp` in this directory; it writes valid.png and valid.svg.
# Data: valid.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Validation'
set xlabel 'step'
set ylabel 'validation bits per byte'
set key top right
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set output 'valid.png'
plot \
    'valid.csv' index 0 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#0072B2' notitle, \
    'valid.csv' index 1 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#E69F00' notitle, \
    'valid.csv' index 2 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#009E73' notitle, \
    'valid.csv' index 3 using 2:4:5 with filledcurves fs transparent solid 0.2 noborder lc rgb '#D55E00' notitle, \
    'valid.csv' index 0 using 2:3 with linespoints lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'hybrid-nope', \
    'valid.csv' index 1 using 2:3 with linespoints lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'hybrid-rope', \
    'valid.csv' index 2 using 2:3 with linespoints lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'transformer-nope', \
    'valid.csv' index 3 using 2:3 with linespoints lc rgb '#D55E00' lw 2 pt 7 ps 0.6 title 'transformer-rope'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'valid.svg'
replot
unset output
