# bars-bytes.gp: grouped bars: bytes: test bpb (mean ± sd over seeds; lower is better)
# Redraw after editing: run `gnuplot bars-bytes.gp` in this directory; it writes bars-bytes.png and bars-bytes.svg.
# Data: bars-bytes.csv (one row per cluster: group, then mean and sd of each bar (columns 2,3 for the first), label).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'bytes: test bpb (mean ± sd over seeds; lower is better)'
set ylabel 'test bpb'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set key outside bottom center horizontal
set border 3
set ytics nomirror
set grid ytics back lt 1 lc rgb '#E6E6E6'
set xrange [-0.5:0.5]
set xtics scale 0 ('bytes' 0)
set yrange [2.3:*]
# a missing sd draws an error bar of length 0 (hidden by the bar's top)
sd(c) = valid(c) ? column(c) : 0
set output 'bars-bytes.png'
plot \
    'bars-bytes.csv' skip 1 using 2:(sd(3)) lc rgb '#0072B2' title 'dense', \
    'bars-bytes.csv' skip 1 using 4:(sd(5)) lc rgb '#E69F00' title 'moe', \
    'bars-bytes.csv' skip 1 using 6:(sd(7)) lc rgb '#009E73' title 'moe-full'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'bars-bytes.svg'
replot
unset output
