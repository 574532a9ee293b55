#!/bin/sh
# count.sh FILE TOP MINLEN — the TOP most frequent words of FILE that have at
# least MINLEN letters (case-folded), to out/top.tsv; totals to out/metrics.json.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 FILE TOP MINLEN" >&2
	exit 2
fi
file=$1 top=$2 minlen=$3
mkdir -p out
tr 'A-Z' 'a-z' <"$file" | tr -cs 'a-z' '\n' | awk -v minlen="$minlen" -v top="$top" '
length($0) >= minlen { count[$0]++; words++ }
END {
	distinct = 0
	for (w in count) { distinct++; list[distinct] = w }
	# Selection of the top entries, ties broken alphabetically, so the
	# output is the same on every awk.
	shown = 0; topwords = 0
	while (shown < top && shown < distinct) {
		best = ""
		for (i = 1; i <= distinct; i++) {
			w = list[i]
			if (w in done) continue
			if (best == "" || count[w] > count[best] || (count[w] == count[best] && w < best)) best = w
		}
		done[best] = 1; shown++; topwords += count[best]
		printf "%s\t%d\n", best, count[best] > "out/top.tsv"
	}
	share = words ? topwords / words : 0
	printf "{\"words\": %d, \"distinct\": %d, \"top_share\": %.4f}\n", words, distinct, share > "out/metrics.json"
}'
echo "$(wc -l <out/top.tsv) words listed; $(cat out/metrics.json)"
