#!/usr/bin/env bash
# End-to-end signed-lookup throughput with the redis replay store against
# the memory store, measured in the same run: one redis-server and two
# verigate processes (memory, redis) on loopback, then ROUNDS interleaved
# `verigate bench` runs against each. Prints every pair and the median
# redis/memory ratio. Usage: benches/redis_vs_memory.sh [ROUNDS] [REQUESTS]
#
# By default everything shares the machine's cores, so Redis's own CPU per
# request comes out of verigate's budget. With SEPARATE_REDIS_CORE=1,
# redis-server runs alone on the last core and verigate and the load
# generator on the others (taskset), the nearest this one machine gets to
# Redis on its own host, as in a deployment of several replicas.
set -euo pipefail
rounds=${1:-5}
requests=${2:-30000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/verigate
key=bf7769e5321448de88838cdb
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); memory_port=$(free_port); redis_mode_port=$(free_port)
server_cpus=() redis_cpus=()
if [[ ${SEPARATE_REDIS_CORE:-0} == 1 ]]; then
  last=$(($(nproc) - 1))
  redis_cpus=(taskset -c "$last")
  server_cpus=(taskset -c "0-$((last - 1))")
fi
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

"${redis_cpus[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$dir" >/dev/null & pids+=($!)
sed 's/^bind = .*/bind = "127.0.0.1:0"/' verigate.toml >"$dir/memory.toml"
sed -e 's/^store = "memory"/store = "redis"\nredis_url = "redis:\/\/127.0.0.1:'"$redis_port"'\/0"/' \
  -e '/^capacity = /d' "$dir/memory.toml" >"$dir/redis.toml"
VERIGATE_SERVER__BIND=127.0.0.1:$memory_port "${server_cpus[@]}" "$bin" serve --config "$dir/memory.toml" \
  >"$dir/memory.log" 2>&1 & pids+=($!)
VERIGATE_SERVER__BIND=127.0.0.1:$redis_mode_port "${server_cpus[@]}" "$bin" serve --config "$dir/redis.toml" \
  >"$dir/redis.log" 2>&1 & pids+=($!)
for port in "$memory_port" "$redis_mode_port"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done

throughput() {
  "${server_cpus[@]}" "$bin" bench --key "$key" --baseline "" --requests "$requests" --concurrency 32 \
    --url "http://127.0.0.1:$1/contiple/customer" |
    grep -o '[0-9.]* req/s' | head -1 | cut -d' ' -f1
}
ratios=()
for round in $(seq "$rounds"); do
  memory=$(throughput "$memory_port")
  redis=$(throughput "$redis_mode_port")
  ratio=$(python3 -c "print(f'{$redis / $memory * 100:.1f}')")
  ratios+=("$ratio")
  echo "round $round: memory $memory req/s, redis $redis req/s, redis/memory $ratio%"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print "median redis/memory: " a[int((NR+1)/2)] "%"}'
