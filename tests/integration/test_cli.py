"""spr-run command-line edge cases (SPEC §6, §7 "spr-run"): each gives a
clear one-line error (exit 2) or a correct result, never a crash."""
import json
import os
import re
import subprocess
import tempfile
import textwrap

from integration.common import (ENGINE_KIND, PODMAN_ROOTLESS_DEGRADED, SPR, SprTestCase, run_cli, spr_run,
                                 strict_json_loads)

USAGE = "usage: spr-run"


class CliCase(SprTestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="spr-it-cli-")
        self.tmp = self._tmp.name
        self.ok_py = self.write("ok.py", "result = 1\n")

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, name, content):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        return path

    def assertUsageError(self, proc, *fragments, usage=None):
        """Exit 2, a first line 'spr-run: ...' containing the fragments,
        nothing on stdout, and (when usage) the usage line."""
        self.assertEqual(proc.returncode, 2, (proc.stdout, proc.stderr))
        self.assertEqual(proc.stdout, "", proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertTrue(lines, "no message on stderr")
        self.assertTrue(lines[0].startswith("spr-run: "), proc.stderr)
        for frag in fragments:
            self.assertIn(frag, lines[0])
        if usage is True:
            self.assertTrue(any(line.startswith(USAGE) for line in lines), proc.stderr)
        if usage is False:
            self.assertEqual(len(lines), 1, proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertNotIn("Segmentation", proc.stderr)
        return lines[0]


class CodeFile(CliCase):

    def test_empty_file(self):
        r = spr_run(b"")
        self.assertOk(r, None)
        self.assertEqual(r["stdout"], "")

    def test_only_comments(self):
        self.assertOk(spr_run("# nothing\n"), None)

    def test_non_utf8_file(self):
        path = self.write("bad.py", b"\xff\xfe")
        line = self.assertUsageError(run_cli(["--json", path], with_engine=True), "UTF-8",
                                     usage=False)
        self.assertNotIn("{", line)

    def test_non_utf8_in_middle(self):
        path = self.write("bad2.py", b"x = 1\ny = '\xe9'\n")
        self.assertUsageError(run_cli([path], with_engine=True), "UTF-8")

    def test_unicode_source_ok(self):
        r = spr_run("résumé = 'é😀'\nresult = résumé\n".encode())
        self.assertOk(r, "é😀")

    def test_utf8_bom_accepted(self):
        # SPEC is silent; `python3 FILE` accepts a UTF-8 BOM (editors on
        # Windows write one), so a careful user expects spr-run to as well.
        r = spr_run("\ufeffresult = 'é😀'\n".encode())
        self.assertOk(r, "é😀")

    def test_crlf_line_endings(self):
        self.assertOk(spr_run(b"x = 1\r\nresult = x + 1\r\n"), 2)

    def test_nul_byte_in_code(self):
        r = spr_run(b"result = 1\x00\n")
        # Python refuses NUL bytes in source; a clean result either way.
        self.assertIsNotNone(r.result, r)
        self.assertFalse(r["ok"])
        self.assertEqual(r["exit_code"], 1)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r["error"].startswith(("SyntaxError", "ValueError")), r)

    def test_ten_megabyte_file(self):
        body = "# comment\n" * (1024 * 1024) + "result = 1\n"
        r = spr_run(body)
        self.assertOk(r, 1)

    def test_stdin_dash(self):
        r = spr_run(file="-", stdin=b"print('from stdin')\nresult = 7\n")
        self.assertOk(r, 7)
        self.assertEqual(r["stdout"], "from stdin\n")

    def test_stdin_dash_plain(self):
        r = spr_run(file="-", stdin=b"print('hi')", json_mode=False)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "hi\n")

    def test_stdin_dash_empty(self):
        self.assertOk(spr_run(file="-", stdin=b""), None)

    def test_missing_file(self):
        self.assertUsageError(run_cli(["--json", "/nonexistent/code.py"], with_engine=True),
                              "/nonexistent/code.py")

    def test_directory_as_file(self):
        self.assertUsageError(run_cli([self.tmp], with_engine=True), self.tmp)

    def test_missing_file_argument(self):
        self.assertUsageError(run_cli(["--json"]), usage=True)

    def test_no_arguments(self):
        self.assertUsageError(run_cli([]), usage=True)

    def test_two_files(self):
        self.assertUsageError(run_cli([self.ok_py, self.ok_py]), usage=True)


class InputOption(CliCase):

    def test_malformed(self):
        for text in ('{"a":', "{'a': 1}", "[1,]", "NaN", "", '{"a": 1}x', "{", "tru",
                     '{"a": Infinity}', '"\\x"'):
            with self.subTest(text=text):
                proc = run_cli(["--json", "--input", text, self.ok_py], with_engine=True)
                line = self.assertUsageError(proc, "spr-run: --input: ")
                self.assertRegex(line, r"^spr-run: --input: input_data:\d+:\d+: \S")

    def test_malformed_position(self):
        proc = run_cli(["--input", "{'a': 1}", self.ok_py])
        self.assertUsageError(proc, "spr-run: --input: input_data:1:2: ")
        proc = run_cli(["--input", '{\n  "a": 1,\n  "b": }', self.ok_py])
        self.assertUsageError(proc, "spr-run: --input: input_data:3:")

    def test_input_from_file(self):
        path = self.write("in.json", '{"x": 5, "big": %d}\n' % (2 ** 100))
        r = spr_run("result = [x, big]", args=["--input", "@" + path])
        self.assertOk(r, [5, 2 ** 100])

    def test_input_from_missing_file(self):
        self.assertUsageError(run_cli(["--input", "@/nonexistent/in.json", self.ok_py]),
                              "/nonexistent/in.json")

    def test_input_file_malformed(self):
        path = self.write("bad.json", '{"x": }')
        self.assertUsageError(run_cli(["--input", "@" + path, self.ok_py]), "--input")

    def test_last_input_wins_or_error(self):
        code_path = self.write("x.py", "result = x\n")
        proc = run_cli(["--json", "--input", '{"x": 1}', "--input", '{"x": 2}', code_path],
                       with_engine=True)
        # Either a clear usage error or the later value; never a crash.
        self.assertIn(proc.returncode, (0, 2), proc.stderr)
        if proc.returncode == 0:
            self.assertEqual(strict_json_loads(proc.stdout)["result"], 2)
        else:
            self.assertUsageError(proc, "--input")

    def test_whitespace_around_input(self):
        r = spr_run("result = x", input_text='  \n{"x": 3}\n  ')
        self.assertOk(r, 3)


class NumericOptions(CliCase):

    def test_bad_timeouts(self):
        for value in ("0", "-1", "1e300", "abc", "", "nan", "inf", "86400.5", "1s"):
            with self.subTest(value=value):
                proc = run_cli(["--json", "--timeout", value, self.ok_py], with_engine=True)
                self.assertUsageError(proc, "timeout")

    def test_out_of_range_flag_names_the_flag(self):
        # The message should name what the user typed (the flag), not an
        # internal policy document position such as "policy:1:20".
        for opt, value in (("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "1e300"),
                           ("--memory", "0"), ("--memory", "1048577"),
                           ("--max-output", "1048577")):
            with self.subTest(opt=opt, value=value):
                line = self.assertUsageError(run_cli([opt, value, self.ok_py]))
                self.assertIn(opt, line)
                self.assertNotIn("policy:1:", line)

    def test_tiny_timeout_valid_result(self):
        proc = run_cli(["--json", "--timeout", "0.001", self.ok_py], with_engine=True)
        self.assertIn(proc.returncode, (0, 124), proc.stderr)
        res = strict_json_loads(proc.stdout)
        self.assertEqual(res["exit_code"], proc.returncode)
        if proc.returncode == 124:
            self.assertTrue(res["timed_out"])
            self.assertEqual(res["error"], "Execution timed out after 0.001s")
        else:
            self.assertTrue(res["ok"])
            self.assertEqual(res["result"], 1)

    def test_max_timeout_accepted(self):
        r = spr_run("result = 1", args=["--timeout", "86400"])
        self.assertOk(r, 1)

    def test_bad_memory(self):
        for value in ("0", "1.5", "-5", "abc", "", "1048577"):
            with self.subTest(value=value):
                self.assertUsageError(run_cli(["--memory", value, self.ok_py]), "memory")

    def test_bad_max_output(self):
        for value in ("-1", "1.5", "x", "1048577"):
            with self.subTest(value=value):
                self.assertUsageError(run_cli(["--max-output", value, self.ok_py]), "output")

    def test_option_missing_value(self):
        for opt in ("--timeout", "--memory", "--max-output", "--input", "--policy",
                    "--python", "--engine"):
            with self.subTest(opt=opt):
                proc = run_cli([opt])
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertTrue(proc.stderr.startswith("spr-run: "), proc.stderr)


class FlagSweep(CliCase):
    """Every numeric flag of spr-run and spr, with the values people type:
    each is either taken (the run happens, whatever its outcome) or
    refused with exit 2 and a message naming the flag, never taken as
    something else (issue: "--memory 100" once read as 1e+02)."""

    # (flag, accepted, refused); "1" MiB of memory is accepted and then
    # not enough to start Python: a result, not a usage error.
    SPR_RUN = [
        ("--memory", ["1", "10", "64", "100", "128", "200", "256", "300", "1000", "1024",
                      "4096", "65536", "1048576", "0100"],
         ["0", "-1", "-100", "1.5", "0.5", "1e3", "10.0", "+10", " 10", "10 ", "1_000",
          "0x10", "", "abc", "10MB", "1048577", "99999999999999999999"]),
        ("--max-output", ["0", "1", "10", "100", "128", "1000", "4096", "1048576"],
         ["-1", "1.5", "1e3", "+1", " 1", "x", "", "1048577", "99999999999999999999"]),
        ("--timeout", ["0.001", "0.1", "0.5", "1", "2.5", "10", "100", "1000", "1e3", ".5", "5.",
                       "86400"],
         ["0", "-1", "-0.5", "86400.5", "1e300", "nan", "inf", "", "abc", "1s", " 1", "0x1",
          "1,5"]),
    ]

    def test_spr_run_numeric_flags(self):
        for flag, accepted, refused in self.SPR_RUN:
            for value in accepted:
                with self.subTest(flag=flag, value=value):
                    proc = run_cli(["--json", flag, value, self.ok_py], with_engine=True)
                    self.assertNotEqual(proc.returncode, 2, proc.stderr)
                    r = strict_json_loads(proc.stdout)
                    # 1 MiB cannot hold an interpreter; on rlimits (rootless
                    # podman degraded) RLIMIT_AS counts address space, and
                    # below ~64 MiB the interpreter cannot even map libc.
                    too_small = flag == "--memory" and (
                        value == "1" or (PODMAN_ROOTLESS_DEGRADED and int(value) < 64))
                    if not too_small:
                        self.assertTrue(r["ok"] or r["timed_out"], r)
            for value in refused:
                with self.subTest(flag=flag, value=value):
                    line = self.assertUsageError(run_cli([flag, value, self.ok_py]))
                    self.assertIn(flag, line)

    def test_spr_run_flag_value_is_the_number_typed(self):
        # --memory 100 is 100 MiB: 60 MiB fit, 200 MiB do not.
        for size, ok in ((60, True), (200, False)):
            with self.subTest(size=size):
                proc = run_cli(["--json", "--memory", "100", "-"],
                               stdin=f"b = bytearray({size} << 20)\nresult = len(b)",
                               with_engine=True)
                r = strict_json_loads(proc.stdout)
                self.assertEqual(r["ok"], ok, r)
                if not ok:
                    self.assertEqual(r["error"], "Memory limit exceeded")
        # 0.1 s written as 1e-1: the error text says what was meant.
        proc = run_cli(["--json", "--timeout", "1e-1", "-"], stdin="import time\ntime.sleep(3)",
                       with_engine=True)
        self.assertEqual(strict_json_loads(proc.stdout)["error"], "Execution timed out after 0.1s")

    def test_spr_run_ssh_port(self):
        for value in ("1", "22", "2222", "65535"):
            with self.subTest(value=value):
                # No --ssh-host: the engine refuses (125), not the flag (2).
                proc = run_cli(["--engine", "docker", "--ssh-port", value, self.ok_py])
                self.assertNotEqual(proc.returncode, 2, proc.stderr)
        for value in ("0", "65536", "-1", "+22", " 22", "22 ", "22a", "", "2.2", "1e3",
                      "99999999999999999999"):
            with self.subTest(value=value):
                line = self.assertUsageError(run_cli(["--engine", "docker", "--ssh-port", value,
                                                      self.ok_py]))
                self.assertIn("--ssh-port", line)

    def test_spr_run_preload_import(self):
        # Taken: the run happens with the module imported before the code.
        policy = self.write("open.toml", "[policy]\nblocked_imports = []\n")
        probe = self.write("probe.py", "import sys\nresult = sorted(sys.modules)\n")
        accepted = ["json", "math", "_json", "xml.etree.ElementTree", "collections.abc",
                    "email.mime.text", "http.client", "A", "_", "x1"]
        if ENGINE_KIND == "local" and os.path.isdir("/usr/lib/python3/dist-packages/numpy"):
            accepted.append("numpy")  # the host's python3-numpy (an image has its own)
        for value in accepted:
            with self.subTest(value=value):
                proc = run_cli(["--json", "--policy", policy, "--preload-import", value, probe],
                               with_engine=True)
                r = strict_json_loads(proc.stdout)
                if value in ("A", "_", "x1"):  # well-formed, not installed
                    self.assertEqual(proc.returncode, 1, proc.stderr)
                    self.assertEqual(r["error"], f"preload_imports: importing '{value}' failed: "
                                     f"ModuleNotFoundError: No module named '{value}'")
                else:
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                    self.assertIn(value, r["result"])
        # Well-formed names of modules that are not there fail the run (1).
        for value, why in (("json.py", "No module named 'json.py'"),
                           ("math.py", "No module named 'math.py'; 'math' is not a package"),
                           ("json.nosuch", "No module named 'json.nosuch'"),
                           ("spr_no_such_module", "No module named 'spr_no_such_module'")):
            with self.subTest(value=value):
                proc = run_cli(["--json", "--policy", policy, "--preload-import", value, probe],
                               with_engine=True)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertEqual(strict_json_loads(proc.stdout)["error"],
                                 f"preload_imports: importing '{value}' failed: "
                                 f"ModuleNotFoundError: {why}")
        # Refused as typed: exit 2 naming the flag and the value.
        for value in ("", " json", "json ", "a..b", ".json", "json.", "1abc", "numpy-1",
                      "numpy==1.24", "json,os", "json os", "json/", "./json", "-", "café",
                      "numpy[extra]", "@numpy", "json\n", "\tjson", "a" * 201):
            with self.subTest(value=value):
                line = self.assertUsageError(run_cli(["--preload-import", value, self.ok_py]))
                self.assertTrue(line.startswith(f"spr-run: --preload-import {value}: "
                                                "'preload_imports'") or "\n" in value, line)
        # Repeatable, in order; together they replace the policy file's list.
        listed = self.write("listed.toml", "[policy]\nblocked_imports = []\n"
                            "preload_imports = ['spr_no_such_module']\n")
        proc = run_cli(["--json", "--policy", listed, "--preload-import", "json",
                        "--preload-import", "xml.dom", probe], with_engine=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        modules = strict_json_loads(proc.stdout)["result"]
        self.assertIn("json", modules)
        self.assertIn("xml.dom", modules)
        line = self.assertUsageError(run_cli(["--preload-import", "json", "--preload-import",
                                              "math", "--preload-import", "json", self.ok_py]))
        self.assertEqual(line, "spr-run: --preload-import json: 'preload_imports' names 'json' "
                               "twice: drop one")
        many = [a for i in range(65) for a in ("--preload-import", f"m{i}")]
        line = self.assertUsageError(run_cli(many + [self.ok_py]))
        self.assertTrue(line.startswith("spr-run: --preload-import m64: 'preload_imports' lists "
                                        "65 modules, at most 64"), line)
        # The default policy blocks what json does not import; os it blocks.
        proc = run_cli(["--json", "--preload-import", "os", self.ok_py], with_engine=True)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(strict_json_loads(proc.stdout)["error"],
                         "preload_imports: 'os' is blocked by blocked_imports: remove 'os' from "
                         "blocked_imports or 'os' from preload_imports")

    def test_spr_numeric_flags(self):
        for flag, args, accepted, refused in (
                ("--timeout-seconds", ["stop", "container", "spr-sweep-none"],
                 ["0", "1", "10", "100", "1000", "3600"],
                 ["-1", "1.5", "+1", " 1", "1e3", "", "x", "99999999999999999999"]),
                ("--ssh-port", ["--ssh-host", "127.0.0.1", "list", "containers"],
                 [], ["0", "65536", "-1", "+22", " 22", "22a", "", "1e3"])):
            for value in accepted:
                with self.subTest(flag=flag, value=value):
                    proc = subprocess.run([SPR, flag, value, *args], capture_output=True,
                                          text=True, timeout=60)
                    self.assertNotEqual(proc.returncode, 2, proc.stderr)
            for value in refused:
                with self.subTest(flag=flag, value=value):
                    proc = subprocess.run([SPR, flag, value, *args], capture_output=True,
                                          text=True, timeout=60)
                    self.assertEqual(proc.returncode, 2, proc.stderr)
                    self.assertIn(flag, proc.stderr)


class Options(CliCase):

    def test_unknown_option(self):
        self.assertUsageError(run_cli(["--bogus", self.ok_py]), "--bogus", usage=True)

    def test_engine_bogus(self):
        self.assertUsageError(run_cli(["--engine", "bogus", self.ok_py]), "bogus", usage=True)

    def test_engine_values_people_type(self):
        # Only the three exact names; near misses are usage errors, never
        # a guess (a "Docker" that ran locally would be a silent fallback).
        for value in ("Docker", "PODMAN", "podman ", " local", "", "lxc", "containerd",
                      "local,docker", "docker-ce", "nerdctl", "crun", "runc"):
            with self.subTest(value=value):
                proc = run_cli(["--engine", value, self.ok_py])
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("--engine", proc.stderr)

    def test_help(self):
        proc = run_cli(["--help"])
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(proc.stdout.startswith(USAGE), proc.stdout)
        for opt in ("--engine", "--policy", "--input", "--timeout", "--memory",
                    "--max-output", "--python", "--allow-degraded", "--json"):
            self.assertIn(opt, proc.stdout)

    def test_version(self):
        proc = run_cli(["--version"])
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r"^spr-run \d+\.\d+\.\d+\n$")

    def test_equals_syntax(self):
        r = spr_run("import time\ntime.sleep(5)", args=["--timeout=0.3"])
        self.assertFailed(r, 124, "Execution timed out after 0.3s")

    def test_timeout_overrides_policy(self):
        r = spr_run("while True:\n    pass", policy={"timeout_seconds": 30},
                    args=["--timeout", "0.3"])
        self.assertFailed(r, 124, "Execution timed out after 0.3s")


class PolicyFile(CliCase):

    def run_policy(self, text, code="result = 1", name="policy.toml"):
        path = self.write(name, textwrap.dedent(text).lstrip("\n"))
        code_path = self.write("code.py", code)
        return path, run_cli(["--json", "--policy", path, code_path], with_engine=True)

    def test_missing_policy_file(self):
        self.assertUsageError(run_cli(["--policy", "/nonexistent/p.toml", self.ok_py]),
                              "/nonexistent/p.toml")

    def test_malformed_toml(self):
        path, proc = self.run_policy("""
            [policy]
            mode = "restrict"
            timeout_seconds = = 5
        """)
        line = self.assertUsageError(proc, path)
        self.assertRegex(line, "^spr-run: " + re.escape(path) + r":3:\d+: \S")

    def test_unclosed_array(self):
        path, proc = self.run_policy('[policy]\nblocked_imports = ["os",\n')
        line = self.assertUsageError(proc)
        self.assertRegex(line, "^spr-run: " + re.escape(path) + r":\d+:\d+: \S")

    def test_unknown_key_suggests(self):
        path, proc = self.run_policy("[policy]\ntimeout_second = 5\n")
        line = self.assertUsageError(proc, "timeout_second", "did you mean")
        self.assertIn("timeout_seconds", line)
        self.assertRegex(line, "^spr-run: " + re.escape(path) + r":2:\d+: ")

    def test_wrong_type(self):
        path, proc = self.run_policy('[policy]\ntimeout_seconds = "5"\n')
        line = self.assertUsageError(proc, "timeout_seconds")
        self.assertRegex(line, "^spr-run: " + re.escape(path) + r":2:\d+: ")

    def test_duplicate_key(self):
        path, proc = self.run_policy("[policy]\nmemory_limit_mb = 64\nmemory_limit_mb = 128\n")
        line = self.assertUsageError(proc, "memory_limit_mb")
        self.assertRegex(line, "^spr-run: " + re.escape(path) + r":3:\d+: ")

    def test_bad_mode(self):
        path, proc = self.run_policy('[policy]\nmode = "permissive"\n')
        self.assertUsageError(proc, path, "mode")

    def test_fractional_integer_field(self):
        path, proc = self.run_policy("[policy]\nmemory_limit_mb = 1.5\n")
        self.assertUsageError(proc, path, "memory_limit_mb")

    def test_top_level_key_next_to_policy_table(self):
        path, proc = self.run_policy('timeout_seconds = 1\n[policy]\nmode = "restrict"\n')
        self.assertUsageError(proc, path)

    def test_empty_list_entry(self):
        path, proc = self.run_policy('[policy]\nblocked_imports = [""]\n')
        self.assertUsageError(proc, path, "blocked_imports")

    def test_top_level_policy_keys(self):
        path, proc = self.run_policy("blocked_imports = []\n", code="import os\nresult = os.sep")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["result"], "/")

    def test_empty_policy_file_keeps_defaults(self):
        path, proc = self.run_policy("", code="import os")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["error"],
                         "ImportError: Import 'os' is blocked by policy")

    REFERENCE_POLICY = """
        [policy]
        mode = "restrict"
        timeout_seconds = 5
        memory_limit_mb = 256
        max_output_kb = 128
        blocked_imports = ["os", "subprocess"]
        blocked_builtins = ["eval", "exec", "open"]
        allowed_imports = []
        allowed_builtins = []
        allowed_globals = []
        blocked_globals = []

        [policy.extra_globals]
        project_name = "safe-py-runner"
    """

    def test_reference_policy_file(self):
        _, proc = self.run_policy(self.REFERENCE_POLICY, code="result = project_name")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        res = strict_json_loads(proc.stdout)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["result"], "safe-py-runner")
        self.assertEqual(res["isolation"]["engine"], ENGINE_KIND)

    def test_reference_policy_lists_honoured(self):
        _, proc = self.run_policy(self.REFERENCE_POLICY, code="import os")
        self.assertEqual(json.loads(proc.stdout)["error"],
                         "ImportError: Import 'os' is blocked by policy")
        _, proc = self.run_policy(self.REFERENCE_POLICY, code="result = eval('1')")
        self.assertEqual(json.loads(proc.stdout)["error"],
                         "NameError: name 'eval' is not defined")
        # compile is not in this file's blocked_builtins: the file replaces the default.
        _, proc = self.run_policy(self.REFERENCE_POLICY,
                                  code="result = type(compile('1', 'x', 'eval')).__name__")
        self.assertEqual(json.loads(proc.stdout)["result"], "code", proc.stdout)
        # importlib stays blocked even though the file does not list it.
        _, proc = self.run_policy(self.REFERENCE_POLICY, code="import importlib")
        self.assertEqual(json.loads(proc.stdout)["error"],
                         "ImportError: Import 'importlib' is blocked by policy")

    def test_policy_without_table_header_extra_globals(self):
        _, proc = self.run_policy('[extra_globals]\ngreeting = "hi"\n', code="result = greeting")
        # Top-level form (§2: keys under [policy] or top level).
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["result"], "hi")

    def test_policy_env_and_spr_fields_accepted(self):
        _, proc = self.run_policy("""
            [policy]
            network = false
            max_processes = 64
            cpu_cores = 1.0
            tmp_size_mb = 64
            [policy.env]
            GREETING = "hi"
        """)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(json.loads(proc.stdout)["ok"])
