#!/usr/bin/env bash
# Peak memory of `firstline classify --jsonl` against the size of the batch.
#
# Builds the release binary, writes JSONL batches of 1,000, 10,000 and 100,000 messages
# (deterministic: the same seed, the smaller batches are the first lines of the largest), runs
# the classifier over each with GNU time and prints N, input size, peak RSS, wall time and
# messages/s. The classifier streams, so peak RSS should stay flat while N grows 100x.
#
# Usage (from the repository root):  bash scripts/bench-memory.sh
# BENCH_MEMORY_SIZES="1000 10000" overrides the batch sizes (for a quicker run).
# Units: MiB = 1024 * 1024 bytes (input size and RSS alike).
set -euo pipefail

if [[ ! -f Cargo.toml || ! -f scripts/bench-memory.sh ]] || ! grep -q '^name = "firstline"' Cargo.toml; then
    echo "bench-memory.sh: run this from the firstline repository root, e.g.:" >&2
    echo "  cd /path/to/firstline && bash scripts/bench-memory.sh" >&2
    exit 2
fi
# -f and %M are GNU time's; the shell keyword `time` has neither.
if ! /usr/bin/time -f '%M' true >/dev/null 2>&1; then
    echo "bench-memory.sh: needs GNU time at /usr/bin/time (Debian: apt-get install time)" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "bench-memory.sh: needs python3" >&2; exit 2; }

read -r -a SIZES <<<"${BENCH_MEMORY_SIZES:-1000 10000 100000}"
for n in "${SIZES[@]}"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-memory.sh: bad batch size '$n'" >&2; exit 2; }
done
LARGEST=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -n 1)

echo "building: cargo build --release" >&2
cargo build --release --quiet
BIN=target/release/firstline

WORK=$(mktemp -d "${TMPDIR:-/tmp}/firstline-bench-memory.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The generator: a handful of message templates filled with varying hosts, ids and numbers.
# Mix: ~70% short messages (0.2-1 KiB), ~25% medium (1-5 KiB, quoted replies, short logs),
# ~5% long pasted logs (5-20 KiB). Streams lines, so it needs little memory itself.
echo "generating $LARGEST messages" >&2
python3 - "$LARGEST" "$WORK/all.jsonl" <<'PY'
import json
import random
import sys

count, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(20240501)  # fixed seed: the same batches on every run

SHORT = [
    "URGENT: {host} is down\n\nHi,\n\nour production node {host} ({ip}) stopped answering at {hh}:{mm}. All {n} containers on it are offline and customers are calling. We tried a reset through IPMI, no luck.\n\nPlease call me back: +1 415 555 01{nn}\n\nRegards,\n{person}",
    "CT {ct} won't start after the update, vzctl says 'Failed to start the Container'. other CTs on {host} are fine, disk has {n} GB free and we didn't touch the config. any idea? it's a customer's web shop",
    "Nightly backup failed\n\nHello,\n\nthe backup of CT {ct} failed again last night with 'Can't create snapshot'. The backup server has {n} GB free. Could you have a look?\n\nThanks,\n{person}",
    "power panel gives error 500 for all customers on {host} since {hh}:{mm}, restart of pvaagent didn't help. containers themselves are running. about {n} customers use the panel, can someone look pls",
    "Slow containers on {host}\n\nHi,\n\nsince Monday the load average on {host} is around {n} and websites in CT {ct} take 20 seconds to load. It happens every evening, a reboot helps for a while.\n\nBest regards,\n{person}",
    "How to resize a container disk?\n\nHello,\n\nwhat is the recommended way to grow the disk of CT {ct} from 50 GB to 100 GB without downtime? We run Virtuozzo 7.5 on {host}.\n\nThanks in advance,\n{person}",
    "feature request: 2FA for Power Panel, about {n} of our customers asked for it in the last months and other providers already have it. not urgent, just an idea for a future release.",
]
QUOTE = (
    "On Tue, {day} Mar 2025 at {hh}:{mm}, Virtuozzo Support <support@virtuozzo.example> wrote:\n"
    "> Hello,\n>\n> thank you for contacting support. Please send us the output of\n"
    "> # prlctl list -a\n> # journalctl -b -1 | tail -n 200\n> and tell us whether a workaround is available.\n>\n"
    "> Best regards,\n> Virtuozzo Technical Support\n"
)
LOG = [
    "Mar {day:2d} {hh}:{mm}:{ss} {host} kernel: [{up}.{us:06d}] EXT4-fs error (device ploop{pid}p1): ext4_lookup:1606: inode #2: comm init: deleted inode referenced",
    "Mar {day:2d} {hh}:{mm}:{ss} {host} kernel: [{up}.{us:06d}] Out of memory in UB {ct}: OOM killed process {pid} (mysqld)",
    "Mar {day:2d} {hh}:{mm}:{ss} {host} systemd[1]: prl-disp.service: main process exited, code=killed, status=9/KILL",
    "2025-03-{day:02d}T{hh}:{mm}:{ss}+0100 vzctl : CT {ct} : Error in ploop_mount_image (ploop.c:2051): Can't mount image: Invalid argument",
    "2025-03-{day:02d}T{hh}:{mm}:{ss}+0100 vzctl : CT {ct} : Container start failed",
    "03-{day:02d} {hh}:{mm}:{ss}.{ms:03d} F /disp:{pid}:{tid}/ Failed to get VE state: PRL_ERR_VZCTL_OPERATION_FAILED",
    "2025-03-{day:02d} {hh}:{mm}:{ss} vzabackup[{pid}]: Backup of CT {ct} failed",
]


def values():
    return {
        "host": f"hn{rng.randrange(1, 40)}",
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "ct": rng.randrange(100, 1000),
        "n": rng.randrange(5, 200),
        "nn": f"{rng.randrange(100):02d}",
        "hh": f"{rng.randrange(24):02d}",
        "mm": f"{rng.randrange(60):02d}",
        "ss": f"{rng.randrange(60):02d}",
        "day": rng.randrange(1, 29),
        "person": rng.choice(["John Miller", "Anna Kowalski", "José García", "Jürgen Schmidt"]),
    }


def log_lines(v, size):
    lines, total = [], 0
    while total < size:
        line = rng.choice(LOG).format(
            up=rng.randrange(100, 90000), us=rng.randrange(10**6), pid=rng.randrange(300, 60000),
            tid=rng.randrange(300, 60000), ms=rng.randrange(1000), **v)
        lines.append(line)
        total += len(line.encode()) + 1
    return "\n".join(lines)


def message():
    v = values()
    text = rng.choice(SHORT).format(**v)
    roll = rng.random()
    if roll < 0.05:  # long pasted log, 5-20 KiB
        text += "\n\nHere is the log from the node:\n" + log_lines(v, rng.randrange(5 * 1024, 20 * 1024))
    elif roll < 0.30:  # medium: a quoted reply and/or a short log, 1-5 KiB
        if rng.random() < 0.5:
            text += "\n\n" + QUOTE.format(**v) * rng.randrange(1, 6)
        else:
            text += "\n\nlog:\n" + log_lines(v, rng.randrange(1024, 4 * 1024))
    return text


with open(path, "w", encoding="utf-8") as out:
    for i in range(count):
        out.write(json.dumps({"id": f"m{i:06d}", "text": message()}, ensure_ascii=False))
        out.write("\n")
PY

printf '%10s %10s %15s %10s %12s\n' "N" "input MiB" "peak RSS MiB" "wall s" "messages/s"
for n in "${SIZES[@]}"; do
    file="$WORK/batch-$n.jsonl"
    head -n "$n" "$WORK/all.jsonl" >"$file"
    bytes=$(wc -c <"$file")
    # GNU time writes "<max RSS KiB> <wall seconds>" to its own file, apart from the program's stderr.
    /usr/bin/time -f '%M %e' -o "$WORK/time-$n" "$BIN" classify --jsonl "$file" >/dev/null
    read -r rss_kib wall <"$WORK/time-$n"
    awk -v n="$n" -v b="$bytes" -v r="$rss_kib" -v w="$wall" 'BEGIN {
        printf "%10d %10.2f %15.1f %10.2f %12.0f\n", n, b / 1048576, r / 1024, w, (w > 0 ? n / w : 0)
    }'
    rm -f "$file"
done
echo "(wall time includes process start and policy compile; one thread; MiB = 1048576 bytes)"
