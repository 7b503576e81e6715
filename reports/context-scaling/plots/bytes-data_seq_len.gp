# bytes-data_seq_len.gp: lines with error bars: bytes test bpb against data.seq_len (mean ± sd over seeds); zipped with 1 other axis
# Redraw after editing: run `gnuplot bytes-data_seq_len.gp` in this directory; it writes bytes-data_seq_len.png and bytes-data_seq_len.svg.
# Data: bytes-data_seq_len.csv (columns series,x,y,lo,hi; one block per series, `index s` selects series s).

set encoding utf8
set datafile separator comma
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set title 'bytes test bpb against data.seq_len (mean ± sd over seeds); zipped with 1 other axis'
set xlabel 'data.seq_len'
set ylabel 'bytes test bpb'
set key outside right
set border 3
set tics nomirror
set grid back lt 1 lc rgb '#E6E6E6'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set logscale x
set xtics (128, 256, 512, 1024)
set output 'bytes-data_seq_len.png'
plot \
    'bytes-data_seq_len.csv' index 0 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#0072B2' lw 2 pt 7 ps 0.6 title 'attention', \
    'bytes-data_seq_len.csv' index 1 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#E69F00' lw 2 pt 7 ps 0.6 title 'mamba', \
    'bytes-data_seq_len.csv' index 2 using 2:3:(valid(4) ? $4 : $3):(valid(5) ? $5 : $3) with yerrorlines lc rgb '#009E73' lw 2 pt 7 ps 0.6 title 'hybrid-1to7'

set terminal svg size 900,560 dynamic noenhanced font 'sans,11'
set output 'bytes-data_seq_len.svg'
replot
unset output
