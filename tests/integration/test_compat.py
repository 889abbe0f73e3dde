"""Ordinary code still works inside the sandbox.

The stdlib through spr-run with a permissive Python policy (nothing
blocked: these are the kernel boundary's neighbours, not the guardrail's
tests). Each test groups several small checks in one run to stay fast and
asserts exact values.

What the sandbox provides that these rely on (docs: the LocalEngine
layout): /usr read-only (stdlib, libc, /usr/share/zoneinfo), /tmp and
/dev/shm writable tmpfs (tempfile, multiprocessing's POSIX semaphores),
loopback up in the run's own network namespace, the user `sandbox`
(uid 1000) in /etc/passwd, LANG/LC_ALL=C.UTF-8 and python -X utf8.

zoneinfo: the interpreter has no `tzdata` package here; zoneinfo reads the
system database /usr/share/zoneinfo, which is visible because /usr is bound.
On a host without it, ZoneInfo("Europe/Paris") fails the same way inside
and outside, and the test asserts that instead.
"""
import os
import random
import unittest

from integration.common import PERMISSIVE, SprTestCase, spr_run


def run_ok(case, code, **kw):
    run = spr_run(code, policy=dict(PERMISSIVE, **kw.pop("policy", {})), **kw)
    case.assertOk(run)
    return run


class Compat(SprTestCase):

    def test_text_and_data_formats(self):
        code = r'''
import base64, csv, io, json, re, struct, array, unicodedata, uuid, urllib.parse
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from email import message_from_string
from email.policy import default as email_default

r = {}
r["json"] = json.loads(json.dumps({"a": [1, 2.5, None, True], "é": "ü"}, ensure_ascii=False))
r["re"] = re.findall(r"(\w+)@(\w+)\.org", "ann@python.org, bob@kernel.org")
r["re_sub"] = re.sub(r"\d+", lambda m: str(int(m.group()) * 2), "a1 b22 c333")
buf = io.StringIO()
w = csv.writer(buf)
w.writerows([["name", "n"], ["x,y", 1], ['q"uote', 2]])
r["csv_text"] = buf.getvalue()
r["csv_back"] = list(csv.reader(io.StringIO(buf.getvalue())))
root = ET.fromstring("<r><i k='1'>a</i><i k='2'>b</i></r>")
r["xml"] = [(e.get("k"), e.text) for e in root.iter("i")]
r["xml_out"] = ET.tostring(ET.Element("e", {"x": "1"}), encoding="unicode")
m = EmailMessage()
m["From"], m["To"], m["Subject"] = "a@example.org", "b@example.org", "héllo"
m.set_content("body ✓")
back = message_from_string(m.as_string(), policy=email_default)
r["email"] = [str(back["Subject"]), back.get_content().strip(), back.get_content_type()]
u = urllib.parse.urlsplit("https://user@example.org:8443/p/a%20th?q=1&q=2&x=%C3%A9#frag")
r["urlsplit"] = [u.scheme, u.hostname, u.port, urllib.parse.unquote(u.path), u.fragment]
r["parse_qs"] = urllib.parse.parse_qs(u.query)
r["urlencode"] = urllib.parse.urlencode({"a": "b c", "é": "&"})
r["b64"] = [base64.b64encode(b"spr\x00\xff").decode(), base64.b64decode("c3By").decode(),
            base64.urlsafe_b64encode(b"\xfb\xff").decode(), base64.b32encode(b"ab").decode()]
r["struct"] = [struct.pack("<IhQ", 1, -2, 3).hex(), struct.unpack(">HB", b"\x01\x02\x03"),
               struct.calcsize("<IhQ")]
a = array.array("i", [3, 1, 2])
a.append(-7)
r["array"] = [a.tolist(), a.itemsize, array.array("d", [0.5]).tobytes().hex()]
r["unicodedata"] = [unicodedata.name("é"), unicodedata.normalize("NFD", "é") == "e\u0301",
                    unicodedata.category("日"), unicodedata.numeric("½"),
                    unicodedata.unidata_version != ""]
r["uuid"] = [str(uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")),
             str(uuid.uuid3(uuid.NAMESPACE_URL, "https://example.org")),
             uuid.uuid4().version, len({uuid.uuid4() for _ in range(100)}),
             str(uuid.UUID(bytes=bytes(range(16))))]
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "json": {"a": [1, 2.5, None, True], "é": "ü"},
            "re": [["ann", "python"], ["bob", "kernel"]],
            "re_sub": "a2 b44 c666",
            "csv_text": 'name,n\r\n"x,y",1\r\n"q""uote",2\r\n',
            "csv_back": [["name", "n"], ["x,y", "1"], ['q"uote', "2"]],
            "xml": [["1", "a"], ["2", "b"]],
            "xml_out": '<e x="1" />',
            "email": ["héllo", "body ✓", "text/plain"],
            "urlsplit": ["https", "example.org", 8443, "/p/a th", "frag"],
            "parse_qs": {"q": ["1", "2"], "x": ["é"]},
            "urlencode": "a=b+c&%C3%A9=%26",
            "b64": ["c3ByAP8=", "spr", "-_8=", "MFRA===="],
            "struct": ["01000000feff0300000000000000", [258, 3], 14],
            "array": [[3, 1, 2, -7], 4, "000000000000e03f"],
            "unicodedata": ["LATIN SMALL LETTER E WITH ACUTE", True, "Lo", 0.5, True],
            "uuid": ["886313e1-3b8a-5372-9b90-0c9aee199e5d",
                     "f635417d-d6de-39c1-bd60-6093b24b0b28",
                     4, 100, "00010203-0405-0607-0809-0a0b0c0d0e0f"],
        })

    def test_numbers_and_collections(self):
        code = r'''
import bisect, collections, decimal, fractions, heapq, itertools, math, random, statistics
from decimal import Decimal
r = {}
r["math"] = [math.factorial(20), math.gcd(84, 36), math.isqrt(10**20 + 1), math.comb(10, 3),
             math.sqrt(2), math.log2(1024), math.isclose(math.sin(math.pi), 0, abs_tol=1e-12),
             math.inf > 1e308, math.fsum([0.1] * 10)]
decimal.getcontext().prec = 30
r["decimal"] = [str(Decimal(1) / Decimal(7)), str(Decimal("0.1") + Decimal("0.2")),
                str(Decimal("2").sqrt()), str(Decimal("1.005").quantize(Decimal("0.01"),
                                                                     decimal.ROUND_HALF_UP))]
f = fractions.Fraction(3, 4) + fractions.Fraction(5, 6)
r["fractions"] = [str(f), str(fractions.Fraction("0.125")), str(fractions.Fraction(1.5)),
                  str(f.limit_denominator(10))]
data = [2, 4, 4, 4, 5, 5, 7, 9]
r["statistics"] = [statistics.mean(data), statistics.median(data), statistics.mode(data),
                   statistics.pstdev(data), statistics.variance([1, 2, 3, 4]),
                   str(statistics.fmean([1, 2, 3, 4.5]))]
c = collections.Counter("abracadabra")
d = collections.defaultdict(list)
for k, v in [("a", 1), ("b", 2), ("a", 3)]:
    d[k].append(v)
P = collections.namedtuple("P", "x y")
dq = collections.deque([1, 2, 3], maxlen=3)
dq.append(4)
od = collections.OrderedDict(b=1, a=2)
od.move_to_end("b")
r["collections"] = [c.most_common(2), dict(d), P(1, 2)._asdict(), list(dq), list(od),
                    dict(collections.ChainMap({"a": 1}, {"a": 2, "b": 3}))]
r["itertools"] = [list(itertools.accumulate([1, 2, 3, 4])),
                  ["".join(p) for p in itertools.permutations("abc", 2)],
                  list(itertools.islice(itertools.count(10, 5), 3)),
                  [(k, len(list(g))) for k, g in itertools.groupby("aaabbc")],
                  list(itertools.product([0, 1], repeat=2)),
                  list(itertools.chain.from_iterable([[1], [2, 3]])),
                  list(itertools.pairwise("abc"))]
h = [5, 1, 8, 3, 2]
heapq.heapify(h)
first = heapq.heappop(h)
r["heapq"] = [first, heapq.nsmallest(2, h), heapq.nlargest(2, [5, 1, 8, 3, 2]),
              list(heapq.merge([1, 4], [2, 3]))]
s = [1, 3, 3, 5]
bisect.insort(s, 4)
r["bisect"] = [bisect.bisect_left(s, 3), bisect.bisect_right(s, 3), s]
rng = random.Random(12345)
r["random"] = [rng.randint(1, 1000) for _ in range(5)] + [rng.choice("abcdef"),
                                                           round(rng.random(), 12)]
random.seed(7)
lst = list(range(10))
random.shuffle(lst)
r["random_module"] = [lst, random.sample(range(100), 3)]
result = r
'''
        run = run_ok(self, code)
        # the same seeded generators on this side (Mersenne Twister is stable)
        rng = random.Random(12345)
        want_random = [rng.randint(1, 1000) for _ in range(5)] + [rng.choice("abcdef"),
                                                                  round(rng.random(), 12)]
        random.seed(7)
        lst = list(range(10))
        random.shuffle(lst)
        want_module = [lst, random.sample(range(100), 3)]
        self.assertEqual(run["result"], {
            "math": [2432902008176640000, 12, 10000000000, 120, 1.4142135623730951, 10.0,
                     True, True, 1.0],
            "decimal": ["0.142857142857142857142857142857", "0.3",
                        "1.41421356237309504880168872421", "1.01"],
            "fractions": ["19/12", "1/8", "3/2", "11/7"],
            "statistics": [5, 4.5, 4, 2.0, 1.6666666666666667, "2.625"],
            "collections": [[["a", 5], ["b", 2]], {"a": [1, 3], "b": [2]}, {"x": 1, "y": 2},
                            [2, 3, 4], ["a", "b"], {"a": 1, "b": 3}],
            "itertools": [[1, 3, 6, 10], ["ab", "ac", "ba", "bc", "ca", "cb"], [10, 15, 20],
                          [["a", 3], ["b", 2], ["c", 1]], [[0, 0], [0, 1], [1, 0], [1, 1]],
                          [1, 2, 3], [["a", "b"], ["b", "c"]]],
            "heapq": [1, [2, 3], [8, 5], [1, 2, 3, 4]],
            "bisect": [1, 3, [1, 3, 3, 4, 5]],
            "random": want_random,
            "random_module": want_module,
        })

    def test_hashing_compression_and_randomness(self):
        code = r'''
import bz2, gzip, hashlib, hmac, io, lzma, os, secrets, zlib
data = ("spr ✓ " * 1000).encode()
r = {}
r["hashlib"] = [hashlib.sha256(b"abc").hexdigest(), hashlib.md5(b"").hexdigest(),
                hashlib.sha1(b"abc").hexdigest(), hashlib.blake2b(b"", digest_size=8).hexdigest(),
                hashlib.sha3_256(b"").hexdigest()[:16],
                hmac.new(b"key", b"msg", "sha256").hexdigest()[:16],
                hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex()[:16]]
r["zlib"] = [zlib.decompress(zlib.compress(data, 9)) == data, zlib.crc32(b"abc"),
             zlib.adler32(b"abc"), len(zlib.compress(data)) < len(data) // 10]
buf = io.BytesIO()
with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
    g.write(data)
r["gzip"] = [gzip.decompress(buf.getvalue()) == data, gzip.decompress(gzip.compress(b"x")) == b"x"]
r["bz2"] = bz2.decompress(bz2.compress(data)) == data
r["lzma"] = [lzma.decompress(lzma.compress(data)) == data,
             lzma.decompress(lzma.compress(data, format=lzma.FORMAT_XZ,
                                           check=lzma.CHECK_SHA256)) == data]
u1, u2 = os.urandom(16), os.urandom(16)
tok = secrets.token_hex(16)
r["random_bytes"] = [len(u1), u1 != u2, len(tok), all(c in "0123456789abcdef" for c in tok),
                     len(secrets.token_urlsafe(32)) >= 32, 0 <= secrets.randbelow(10) < 10,
                     len(open("/dev/urandom", "rb").read(8))]
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "hashlib": ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                        "d41d8cd98f00b204e9800998ecf8427e",
                        "a9993e364706816aba3e25717850c26c9cd0d89d",
                        "e4a6a0577479b2b4", "a7ffc6f8bf1ed766", "2d93cbc1be167bcb",
                        "0a38253555ce37f5"],
            "zlib": [True, 891568578, 38600999, True],
            "gzip": [True, True],
            "bz2": True,
            "lzma": [True, True],
            "random_bytes": [16, True, 32, True, True, True, 8],
        })

    def test_datetime_and_zoneinfo(self):
        code = r'''
import datetime as dt, time, zoneinfo
r = {}
d = dt.datetime(2024, 2, 29, 13, 45, 30, tzinfo=dt.timezone.utc)
r["datetime"] = [d.isoformat(), (d + dt.timedelta(days=1)).date().isoformat(),
                 d.strftime("%A %d %B %Y %H:%M"), d.timestamp(),
                 dt.datetime.fromisoformat("2024-01-02T03:04:05+02:00").utcoffset().total_seconds(),
                 d.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat(),
                 dt.date(2024, 12, 31).isocalendar()[1],
                 dt.datetime.strptime("31/12/99", "%d/%m/%y").year]
now = dt.datetime.now(dt.timezone.utc)
r["now_sane"] = abs(now.timestamp() - time.time()) < 5 and now.year >= 2024
try:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    r["zoneinfo"] = [str(dt.datetime(2024, 1, 15, 12, tzinfo=paris).utcoffset()),
                     str(dt.datetime(2024, 7, 15, 12, tzinfo=paris).utcoffset()),
                     dt.datetime(2024, 7, 15, 12, tzinfo=paris).tzname(),
                     str(dt.datetime(2024, 3, 31, 0, 30, tzinfo=dt.timezone.utc).astimezone(paris)),
                     "America/New_York" in zoneinfo.available_timezones()]
except zoneinfo.ZoneInfoNotFoundError as e:
    r["zoneinfo"] = "ZoneInfoNotFoundError"
r["localtime"] = [time.gmtime(0).tm_year, time.strftime("%Y", time.gmtime(86400 * 366))]
result = r
'''
        run = run_ok(self, code)
        res = run["result"]
        if os.path.exists("/usr/share/zoneinfo/Europe/Paris"):
            want_zone = ["1:00:00", "2:00:00", "CEST", "2024-03-31 01:30:00+01:00", True]
        else:
            want_zone = "ZoneInfoNotFoundError"  # no system tz database, no tzdata package
        self.assertEqual(res, {
            "datetime": ["2024-02-29T13:45:30+00:00", "2024-03-01",
                         "Thursday 29 February 2024 13:45", 1709214330.0, 7200.0,
                         "2024-02-29T08:45:30-05:00", 1, 1999],
            "now_sane": True,
            "zoneinfo": want_zone,
            "localtime": [1970, "1971"],
        })

    def test_sqlite_in_memory(self):
        code = r'''
import sqlite3
con = sqlite3.connect(":memory:")
con.execute("create table t (id integer primary key, name text, score real)")
con.executemany("insert into t (name, score) values (?, ?)",
                [("ann", 3.5), ("bob", 4.0), ("cé", 2.25)])
con.commit()
r = {}
r["rows"] = con.execute("select id, name, score from t order by id").fetchall()
r["agg"] = con.execute("select count(*), sum(score), max(name) from t").fetchone()
r["json1"] = con.execute("select json_extract('{\"a\": [1, 2]}', '$.a[1]')").fetchone()[0]
con.create_function("twice", 1, lambda x: 2 * x)
r["udf"] = con.execute("select twice(score) from t where name = 'bob'").fetchone()[0]
r["version_ok"] = sqlite3.sqlite_version_info >= (3, 7)
try:
    with con:
        con.execute("insert into t (id, name) values (1, 'dup')")
except sqlite3.IntegrityError as e:
    r["integrity"] = str(e)
r["count_after_rollback"] = con.execute("select count(*) from t").fetchone()[0]
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "rows": [[1, "ann", 3.5], [2, "bob", 4.0], [3, "cé", 2.25]],
            "agg": [3, 9.75, "cé"],
            "json1": 2,
            "udf": 8.0,
            "version_ok": True,
            "integrity": "UNIQUE constraint failed: t.id",
            "count_after_rollback": 3,
        })

    def test_threads(self):
        code = r'''
import threading, queue
totals = [0] * 4
lock = threading.Lock()
shared = {"n": 0}
def work(i):
    s = 0
    for k in range(i * 10000, (i + 1) * 10000):
        s += k
    totals[i] = s
    for _ in range(1000):
        with lock:
            shared["n"] += 1
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
q = queue.Queue()
ev = threading.Event()
def producer():
    for i in range(5):
        q.put(i)
    ev.set()
threading.Thread(target=producer).start()
ev.wait(5)
result = {"sum": sum(totals), "per_thread": totals, "locked": shared["n"],
          "queue": [q.get(timeout=5) for _ in range(5)], "alive": threading.active_count()}
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "sum": sum(range(40000)),
            "per_thread": [sum(range(i * 10000, (i + 1) * 10000)) for i in range(4)],
            "locked": 4000, "queue": [0, 1, 2, 3, 4], "alive": 1})

    def test_multiprocessing_and_process_pool(self):
        code = r'''
import concurrent.futures, multiprocessing, os

def square(x):
    return x * x

def pid_of(_):
    return os.getpid()

r = {}
with multiprocessing.Pool(2) as pool:
    r["pool_map"] = pool.map(square, range(10))
    r["pool_workers"] = len(set(pool.map(pid_of, range(40), chunksize=1))) <= 2
    r["pool_apply"] = pool.apply_async(pow, (2, 10)).get(timeout=30)
with concurrent.futures.ProcessPoolExecutor(2) as ex:
    r["executor_map"] = list(ex.map(square, range(6)))
    r["executor_submit"] = ex.submit(sum, [1, 2, 3]).result(timeout=30)
# POSIX semaphores and shared memory live in /dev/shm
sem = multiprocessing.Semaphore(2)
sem.acquire()
r["semaphore"] = sem.get_value()
val = multiprocessing.Value("i", 0)
def bump(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1
ps = [multiprocessing.Process(target=bump, args=(val, 500)) for _ in range(2)]
for p in ps:
    p.start()
for p in ps:
    p.join()
r["shared_value"] = val.value
r["exitcodes"] = [p.exitcode for p in ps]
q = multiprocessing.Queue()
p = multiprocessing.Process(target=q.put, args=("from child",))
p.start()
r["queue"] = q.get(timeout=30)
p.join()
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=16)
shm.buf[:3] = b"spr"
other = shared_memory.SharedMemory(name=shm.name)  # attach by name, as another process would
r["shared_memory"] = bytes(other.buf[:3]).decode()
other.close()
shm.close()
shm.unlink()
r["start_method"] = multiprocessing.get_start_method()
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "pool_map": [0, 1, 4, 9, 16, 25, 36, 49, 64, 81], "pool_workers": True,
            "pool_apply": 1024, "executor_map": [0, 1, 4, 9, 16, 25], "executor_submit": 6,
            "semaphore": 1, "shared_value": 1000, "exitcodes": [0, 0], "queue": "from child",
            "shared_memory": "spr", "start_method": "fork"})

    def test_tempfile_and_pathlib_in_tmp(self):
        code = r'''
import os, pathlib, shutil, tempfile
r = {"gettempdir": tempfile.gettempdir(), "cwd": os.getcwd(),
     "home": os.path.expanduser("~")}
with tempfile.NamedTemporaryFile("w+", suffix=".txt", encoding="utf-8") as f:
    f.write("héllo\n")
    f.flush()
    f.seek(0)
    r["named"] = [os.path.dirname(f.name), f.name.endswith(".txt"), f.read()]
d = tempfile.mkdtemp(prefix="spr-")
r["mkdtemp"] = [os.path.dirname(d), os.path.basename(d).startswith("spr-"),
                oct(os.stat(d).st_mode & 0o777)]
with tempfile.TemporaryDirectory() as td:
    p = pathlib.Path(td) / "sub" / "f.json"
    p.parent.mkdir(parents=True)
    p.write_text('{"k": "✓"}', encoding="utf-8")
    (p.parent / "g.txt").write_bytes(b"\x00\x01")
    r["pathlib"] = [p.read_text(encoding="utf-8"), sorted(x.name for x in p.parent.iterdir()),
                    sorted(str(x.relative_to(td)) for x in pathlib.Path(td).rglob("*.txt")),
                    p.stat().st_size, p.suffix, p.with_suffix(".bak").name]
    shutil.copytree(p.parent, pathlib.Path(td) / "copy")
    r["copytree"] = sorted(os.listdir(pathlib.Path(td) / "copy"))
r["tempdir_gone"] = not os.path.exists(td)
shutil.rmtree(d)
r["usage"] = shutil.disk_usage("/tmp").total > 0
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "gettempdir": "/tmp", "cwd": "/tmp", "home": "/tmp",
            "named": ["/tmp", True, "héllo\n"],
            "mkdtemp": ["/tmp", True, "0o700"],
            "pathlib": ['{"k": "✓"}', ["f.json", "g.txt"], ["sub/g.txt"], 12, ".json", "f.bak"],
            "copytree": ["f.json", "g.txt"],
            "tempdir_gone": True, "usage": True})

    def test_subprocess_and_which(self):
        code = r'''
import shutil, subprocess, sys
r = {}
r["true"] = subprocess.run(["/bin/true"]).returncode
r["false"] = subprocess.run(["/bin/false"]).returncode
r["echo"] = subprocess.run(["/bin/echo", "hi"], capture_output=True, text=True).stdout
r["shell"] = subprocess.run("echo $((6 * 7)) | tr -d '\n'", shell=True, capture_output=True,
                            text=True).stdout
r["python"] = subprocess.run([sys.executable, "-c", "print('child ✓')"], capture_output=True,
                             text=True).stdout
r["stdin"] = subprocess.run(["cat"], input="piped", capture_output=True, text=True).stdout
r["which"] = [shutil.which("python3"), shutil.which("sh"), shutil.which("no-such-tool-spr")]
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {
            "true": 0, "false": 1, "echo": "hi\n", "shell": "42",
            "python": "child ✓\n", "stdin": "piped",
            "which": ["/usr/bin/python3", "/usr/bin/sh", None]})

    def test_loopback_socket_inside(self):
        code = r'''
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
def serve():
    conn, _ = srv.accept()
    with conn:
        data = b""
        while not data.endswith(b"\n"):
            data += conn.recv(100)
        conn.sendall(b"echo: " + data)
t = threading.Thread(target=serve)
t.start()
with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
    c.sendall("ping ✓\n".encode())
    reply = b""
    while not reply.endswith(b"\n"):
        reply += c.recv(100)
t.join()
srv.close()
r = {"tcp": reply.decode(), "localhost": socket.gethostbyname("localhost")}
u1, u2 = socket.socketpair()
u1.sendall(b"unix")
r["socketpair"] = u2.recv(10).decode()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
snd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
snd.sendto(b"dgram", udp.getsockname())
r["udp"] = udp.recvfrom(10)[0].decode()
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {"tcp": "echo: ping ✓\n", "localhost": "127.0.0.1",
                                         "socketpair": "unix", "udp": "dgram"})

    def test_identity_locale_and_utf8_output(self):
        code = r'''
import getpass, grp, locale, os, pwd, sys
r = {"getuser": getpass.getuser(), "pw_name": pwd.getpwuid(os.getuid()).pw_name,
     "pw_dir": pwd.getpwuid(os.getuid()).pw_dir, "gr_name": grp.getgrgid(os.getgid()).gr_name,
     "ids": [os.getuid(), os.geteuid(), os.getgid()],
     "encodings": [sys.getfilesystemencoding(), sys.stdout.encoding,
                   locale.getpreferredencoding(False), sys.getdefaultencoding()],
     "env": {k: os.environ.get(k) for k in ("LANG", "LC_ALL", "HOME", "TMPDIR")},
     "upper": "straße ǆ".upper(), "casefold": "ΣΑΣ".casefold()}
print("héllo wörld ✓ 日本 🐍")
print("stderr ✓", file=sys.stderr)
open("/tmp/ü.txt", "w", encoding="utf-8").write("ok")
r["non_ascii_name"] = os.listdir("/tmp")
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["stdout"], "héllo wörld ✓ 日本 🐍\n")
        self.assertEqual(run["stderr"], "stderr ✓\n")
        self.assertEqual(run["result"], {
            "getuser": "sandbox", "pw_name": "sandbox", "pw_dir": "/tmp", "gr_name": "sandbox",
            "ids": [1000, 1000, 1000],
            "encodings": ["utf-8", "utf-8", "utf-8", "utf-8"],
            "env": {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp"},
            "upper": "STRASSE Ǆ", "casefold": "σασ", "non_ascii_name": ["ü.txt"]})

    def test_time_sleep_and_signals(self):
        code = r'''
import os, signal, time
r = {}
t0 = time.monotonic()
time.sleep(0.2)
r["slept"] = 0.2 <= time.monotonic() - t0 < 2
fired = []
signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
signal.alarm(1)
t0 = time.monotonic()
while not fired and time.monotonic() - t0 < 5:
    time.sleep(0.05)
r["alarm"] = [list(fired), 0.5 < time.monotonic() - t0 < 3]
signal.setitimer(signal.ITIMER_REAL, 0.05)
signal.pause()
r["itimer"] = len(fired)
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append("usr1"))
os.kill(os.getpid(), signal.SIGUSR1)
r["self_signal"] = got
p0 = time.perf_counter()
time.sleep(0.01)
r["perf_counter_moves"] = time.perf_counter() - p0 >= 0.01
r["process_time"] = time.process_time() >= 0
result = r
'''
        run = run_ok(self, code)
        self.assertEqual(run["result"], {"slept": True, "alarm": [[14], True], "itimer": 2,
                                         "self_signal": ["usr1"], "perf_counter_moves": True,
                                         "process_time": True})

    def test_ctypes_libc(self):
        code = r'''
import ctypes, ctypes.util, os
libc = ctypes.CDLL("libc.so.6")
libc.strlen.argtypes = [ctypes.c_char_p]
buf = ctypes.create_string_buffer(32)
libc.snprintf(buf, 32, b"%d-%s", 42, b"spr")
result = {"getpid": [libc.getpid(), os.getpid()], "strlen": libc.strlen(b"sandbox"),
          "snprintf": buf.value.decode(), "find_library": ctypes.util.find_library("c"),
          "abs": libc.abs(-5), "sizeof_long": ctypes.sizeof(ctypes.c_long)}
'''
        run = run_ok(self, code)
        res = run["result"]
        pid = res.pop("getpid")
        self.assertEqual(pid[0], pid[1])
        self.assertEqual(res, {"strlen": 7, "snprintf": "42-spr", "find_library": "libc.so.6",
                               "abs": 5, "sizeof_long": 8})


if __name__ == "__main__":
    unittest.main()
