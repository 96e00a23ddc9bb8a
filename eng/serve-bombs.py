#!/usr/bin/env python3
"""By hand: the serving sample under decompression bombs. Starts the service on MODEL.onnx, sends good requests alone,
then the same beside 24 1-bit 9999x9999 PNGs (12 KB each) and 24 154-byte BMPs claiming 9999x9999, all at once, and
prints the service's peak RSS (VmHWM), /health latency under the attack and good requests' p50/p99.
Usage: python3 eng/serve-bombs.py MODEL.onnx GOOD.png [SERVE_DLL]"""
import http.client, os, struct, subprocess, sys, threading, time, zlib

model, good = sys.argv[1], open(sys.argv[2], "rb").read()
dll = sys.argv[3] if len(sys.argv) > 3 else "samples/DTSKD.Samples.Serve/bin/Release/net10.0/DTSKD.Samples.Serve.dll"
port = 5123

def png(side):
    raw = zlib.compress(bytes(((side + 7) // 8 + 1) * side), 9)
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")

def bmp(side):
    b = bytearray(154); b[0:2] = b"BM"
    struct.pack_into("<IIIiiHH", b, 2, 154, 0, 54, 40, side, side, 1); struct.pack_into("<H", b, 28, 24)
    return bytes(b)

def post(body, kind, out):
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/classify", body, {"Content-Type": kind})
    r = c.getresponse(); r.read(); c.close()
    out.append((r.status, time.perf_counter() - start))

def health(out, stop):
    while not stop.is_set():
        start = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.request("GET", "/health"); c.getresponse().read(); c.close()
        out.append(time.perf_counter() - start); time.sleep(0.05)

def good_load(n, concurrency, out):
    threads = [threading.Thread(target=lambda: [post(good, "image/png", out) for _ in range(n // concurrency)]) for _ in range(concurrency)]
    [t.start() for t in threads]; [t.join() for t in threads]

def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))] * 1000

server = subprocess.Popen(["dotnet", dll, f"--urls=http://127.0.0.1:{port}", f"--Model:Path={model}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/health"); c.getresponse().read(); break
        except OSError: time.sleep(0.2)
    alone = []; good_load(400, 16, alone)
    print(f"good alone, 16 concurrent: p50 {pct([t for _, t in alone], .5):.1f} ms, p99 {pct([t for _, t in alone], .99):.1f} ms")
    bombs, healths, beside, stop = [], [], [], threading.Event()
    h = threading.Thread(target=health, args=(healths, stop)); h.start()
    attack = [threading.Thread(target=post, args=(png(9999), "image/png", bombs)) for _ in range(24)] + \
             [threading.Thread(target=post, args=(bmp(9999), "image/bmp", bombs)) for _ in range(24)]
    [t.start() for t in attack]
    good_load(400, 16, beside)
    [t.join() for t in attack]; stop.set(); h.join()
    statuses = {}
    for s, _ in bombs: statuses[s] = statuses.get(s, 0) + 1
    hwm = [l for l in open(f"/proc/{server.pid}/status") if l.startswith("VmHWM")][0].split()[1]
    print(f"48 bombs: statuses {statuses}, slowest {max(t for _, t in bombs):.1f} s")
    print(f"/health during the attack: max {max(healths) * 1000:.0f} ms over {len(healths)} probes")
    print(f"good beside the bombs, 16 concurrent: p50 {pct([t for _, t in beside], .5):.1f} ms, p99 {pct([t for _, t in beside], .99):.1f} ms, statuses {sorted(set(s for s, _ in beside))}")
    print(f"service peak RSS (VmHWM): {int(hwm) / 1024:.0f} MB")
finally:
    server.kill()
