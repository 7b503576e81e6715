# heatmap-transformer-rope.gp: heatmap: niah, transformer-rope: test accuracy by context and depth (mean of 3 seeds)
# Redraw after editing: run `gnuplot heatmap-transformer-rope.gp` in this directory; it writes heatmap-transformer-rope.png and heatmap-transformer-rope.svg.
# Data: heatmap-transformer-rope.csv (columns x,y,value and the labels of x and y; one row per cell).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'niah, transformer-rope: test accuracy by context and depth (mean of 3 seeds)'
set xlabel 'context length (tokens)'
set ylabel 'needle depth (% of the context)'
set cblabel 'accuracy'
set palette defined (0 '#F0496E', 0.5 '#EBB839', 1 '#0CD79F')
set cbrange [0:1]
set xrange [-0.5:2.5]
set yrange [4.5:-0.5]
set xtics scale 0 ('64' 0, \
    '128' 1, \
    '256' 2)
set ytics scale 0 ('0' 0, \
    '25' 1, \
    '50' 2, \
    '75' 3, \
    '100' 4)
set tics out nomirror
# missing cells are not drawn by `with image`: this grey shows through them
set object 1 rectangle from graph 0, graph 0 to graph 1, graph 1 behind fillcolor rgb '#D9D9D9' fillstyle solid noborder
set output 'heatmap-transformer-rope.png'
plot 'heatmap-transformer-rope.csv' using 1:2:3 with image pixels notitle, \
    'heatmap-transformer-rope.csv' using 1:2:(valid(3) ? sprintf('%.2f', $3) : '-') with labels font ',10' tc rgb 'black' notitle

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'heatmap-transformer-rope.svg'
replot
unset output
