"""A small pure-Python benchmark: integer loops, dicts, strings, a recursive function, sorting.

usage: python3 pybench.py [SCALE]   (default 1). Prints checksums only, so every runner's output must match.
"""
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def words(n):
    counts = {}
    for i in range(n):
        w = format(i * 2654435761 % 1000003, "x")[-3:]
        counts[w] = counts.get(w, 0) + 1
    return sum(v * len(k) for k, v in counts.items())


def sieve(n):
    flags = bytearray([1]) * (n + 1)
    for i in range(2, int(n ** 0.5) + 1):
        if flags[i]:
            flags[i * i::i] = bytes(len(range(i * i, n + 1, i)))
    return sum(flags) - 2


def sorting(n):
    x, values = 88172645463325252, []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        values.append(x >> 40)
    values.sort()
    return values[n // 2]


scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
print(fib(20 + scale), words(60000 * scale), sieve(300000 * scale), sorting(60000 * scale))
