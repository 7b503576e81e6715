# bars-mqar.gp: grouped bars: mqar: test accuracy (mean ± sd over seeds; higher is better)
# Redraw after editing: run `gnuplot bars-mqar.gp` in this directory; it writes bars-mqar.png and bars-mqar.svg.
# Data: bars-mqar.csv (one row per cluster: group, then mean and sd of each bar (columns 2,3 for the first), label).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'mqar: test accuracy (mean ± sd over seeds; higher is better)'
set ylabel 'test accuracy'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set key outside bottom center horizontal
set border 3
set ytics nomirror
set grid ytics back lt 1 lc rgb '#E6E6E6'
set xrange [-0.5:0.5]
set xtics scale 0 ('data.task=mqar data.mqar.no_collisions=true' 0)
set yrange [0:1.05]
# a missing sd draws an error bar of length 0 (hidden by the bar's top)
sd(c) = valid(c) ? column(c) : 0
set output 'bars-mqar.png'
plot \
    'bars-mqar.csv' skip 1 using 2:(sd(3)) lc rgb '#0072B2' title 'attention', \
    'bars-mqar.csv' skip 1 using 4:(sd(5)) lc rgb '#E69F00' title 'mamba', \
    'bars-mqar.csv' skip 1 using 6:(sd(7)) lc rgb '#009E73' title 'hybrid'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'bars-mqar.svg'
replot
unset output
