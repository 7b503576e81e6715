# train_pct_peak.gp: grouped bars: Achieved GFLOP/s as % of the sgemm peak (388 GFLOP/s on 2 threads)
# Redraw after editing: run `gnuplot train_pct_peak.gp` in this directory; it writes train_pct_peak.png and train_pct_peak.svg.
# Data: train_pct_peak.csv (one row per cluster: group, then mean and sd of each bar (columns 2,3 for the first), label).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Achieved GFLOP/s as % of the sgemm peak (388 GFLOP/s on 2 threads)'
set ylabel '% of sgemm peak'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set key outside bottom center horizontal
set border 3
set ytics nomirror
set grid ytics back lt 1 lc rgb '#E6E6E6'
set xrange [-0.5:3.5]
set xtics scale 0 ('d 128, T 256' 0, \
    'd 128, T 2048' 1, \
    'd 512, T 256' 2, \
    'd 512, T 2048' 3)
set yrange [0:*]
# a missing sd draws an error bar of length 0 (hidden by the bar's top)
sd(c) = valid(c) ? column(c) : 0
set output 'train_pct_peak.png'
plot \
    'train_pct_peak.csv' skip 1 using 2:(sd(3)) lc rgb '#0072B2' title 'attention', \
    'train_pct_peak.csv' skip 1 using 4:(sd(5)) lc rgb '#E69F00' title 'mamba1', \
    'train_pct_peak.csv' skip 1 using 6:(sd(7)) lc rgb '#009E73' title 'mamba2', \
    'train_pct_peak.csv' skip 1 using 8:(sd(9)) lc rgb '#D55E00' title 'jamba', \
    'train_pct_peak.csv' skip 1 using 10:(sd(11)) lc rgb '#CC79A7' title 'zamba2'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'train_pct_peak.svg'
replot
unset output
