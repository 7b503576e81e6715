# train_breakdown.gp: stacked bars: Share of a training step per part (arch d_model/T)
# Redraw after editing: run `gnuplot train_breakdown.gp` in this directory; it writes train_breakdown.png and train_breakdown.svg.
# Data: train_breakdown.csv (one row per cluster: group, then mean and sd of each bar (columns 2,3 for the first), label).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'Share of a training step per part (arch d_model/T)'
set ylabel '% of step'
set style data histograms
set style histogram rowstacked
set boxwidth 0.7
set style fill solid 0.8 border -1
set key outside bottom center horizontal
set border 3
set ytics nomirror
set grid ytics back lt 1 lc rgb '#E6E6E6'
set xrange [-0.5:19.5]
set lmargin 14
set xtics scale 0 rotate by 45 right ('attention 128/256' 0, \
    'mamba1 128/256' 1, \
    'mamba2 128/256' 2, \
    'jamba 128/256' 3, \
    'zamba2 128/256' 4, \
    'attention 128/2048' 5, \
    'mamba1 128/2048' 6, \
    'mamba2 128/2048' 7, \
    'jamba 128/2048' 8, \
    'zamba2 128/2048' 9, \
    'attention 512/256' 10, \
    'mamba1 512/256' 11, \
    'mamba2 512/256' 12, \
    'jamba 512/256' 13, \
    'zamba2 512/256' 14, \
    'attention 512/2048' 15, \
    'mamba1 512/2048' 16, \
    'mamba2 512/2048' 17, \
    'jamba 512/2048' 18, \
    'zamba2 512/2048' 19)
set yrange [0:100]
# a missing sd draws an error bar of length 0 (hidden by the bar's top)
sd(c) = valid(c) ? column(c) : 0
set output 'train_breakdown.png'
plot \
    'train_breakdown.csv' skip 1 using (valid(2) ? column(2) : 0) lc rgb '#0072B2' title 'attention', \
    'train_breakdown.csv' skip 1 using (valid(4) ? column(4) : 0) lc rgb '#E69F00' title 'mlp', \
    'train_breakdown.csv' skip 1 using (valid(6) ? column(6) : 0) lc rgb '#009E73' title 'embedding+head+loss', \
    'train_breakdown.csv' skip 1 using (valid(8) ? column(8) : 0) lc rgb '#D55E00' title 'optimizer', \
    'train_breakdown.csv' skip 1 using (valid(10) ? column(10) : 0) lc rgb '#CC79A7' title 'mamba1', \
    'train_breakdown.csv' skip 1 using (valid(12) ? column(12) : 0) lc rgb '#56B4E9' title 'mamba2', \
    'train_breakdown.csv' skip 1 using (valid(14) ? column(14) : 0) lc rgb '#000000' title 'moe', \
    'train_breakdown.csv' skip 1 using (valid(16) ? column(16) : 0) lc rgb '#7F7F7F' title 'shared'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'train_breakdown.svg'
replot
unset output
