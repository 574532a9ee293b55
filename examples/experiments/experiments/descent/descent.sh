#!/bin/sh
# descent.sh LR MOMENTUM STEPS — heavy-ball gradient descent on
# f(x, y) = (x^2 + 25 y^2) / 2 from (1, 1); writes the loss per step to
# out/trace.csv and the final loss, its log10 and the steps to reach 1e-6 to out/metrics.json.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 LR MOMENTUM STEPS" >&2
	exit 2
fi
mkdir -p out
awk -v lr="$1" -v mu="$2" -v steps="$3" '
function loss() { return (x * x + 25 * y * y) / 2 }
BEGIN {
	if (lr <= 0 || mu < 0 || mu >= 1 || steps < 1) {
		print "lr must be > 0, momentum in [0, 1), steps >= 1" > "/dev/stderr"
		exit 2
	}
	x = 1; y = 1; vx = 0; vy = 0; reached = -1
	print "step,loss" > "out/trace.csv"
	for (i = 1; i <= steps; i++) {
		vx = mu * vx - lr * x
		vy = mu * vy - lr * 25 * y
		x += vx; y += vy
		l = loss()
		if (l > 1e12) { diverged = 1; break }
		printf "%d,%.10g\n", i, l > "out/trace.csv"
		if (reached < 0 && l < 1e-6) reached = i
	}
	if (diverged) l = 1e12
	# steps_to_tol is steps + 1 when the loss never got below 1e-6.
	if (reached < 0) reached = steps + 1
	printf "{\"final_loss\": %.10g, \"log10_loss\": %.4f, \"steps_to_tol\": %d, \"diverged\": %d}\n", l, log(l + 1e-300) / log(10), reached, diverged + 0 > "out/metrics.json"
}'
echo "lr=$1 momentum=$2: $(cat out/metrics.json)"
