# bench/plot.gp -- server CPU per STARTTLS handshake by group and certificate (TLS 1.3, full):
# ringmail beside Postfix beside the OpenSSL ceiling. bench/run-bench.py writes the data and runs
#   gnuplot -e "datafile='D'; outfile='O.png'; term='pngcairo'; nseries=N" bench/plot.gp
# The data: a header line ("pair" and the series' names), then one line per pair: "GROUP/CERT"
# and one value per series, in µs; "-" where a series has no figure (a failed row).
if (!exists("term")) term = "pngcairo"
eval("set terminal " . term . " size 1600,700")
set rmargin 10
set output outfile
set title "Server CPU per STARTTLS handshake (TLS 1.3, full), µs, log scale"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set grid ytics
set ylabel "server CPU µs per handshake"
set xtics rotate by -40 scale 0 font ",9"
set key top left
plot for [i=2:nseries+1] datafile using i:xtic(1) title columnheader(i)
