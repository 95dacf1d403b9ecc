package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/kfp/task"
)

// testLauncher is a launcher kept in a temporary directory: its own
// directory, its termination file and a run volume (root) for the paths.
type testLauncher struct {
	*Launcher
	root           string
	stdout, stderr *bytes.Buffer
}

func newTestLauncher(t *testing.T) *testLauncher {
	t.Helper()
	root := t.TempDir()
	tl := &testLauncher{root: root, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	tl.Launcher = &Launcher{
		Dir:             filepath.Join(root, "kfp"),
		TerminationPath: filepath.Join(root, "termination-log"),
		Stdout:          tl.stdout,
		Stderr:          tl.stderr,
	}
	return tl
}

// path is a path on the test's run volume.
func (tl *testLauncher) path(p string) string { return filepath.Join(tl.root, p) }

func (tl *testLauncher) write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(tl.path(p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tl.path(p), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// read gives a file's content, "<none>" when it does not exist.
func (tl *testLauncher) read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sh is a component running a shell script; $0, $1... are args.
func sh(script string, args ...string) []string {
	return append([]string{"/bin/sh", "-c", script}, args...)
}

func TestRun(t *testing.T) {
	cases := map[string]struct {
		// exec builds the Executor from the test's run volume path function.
		exec func(p func(string) string) task.Executor
		// files are on the run volume before the launcher starts.
		files           map[string]string
		wantCode        int
		wantTermination string
		wantFiles       map[string]string
		wantStdout      string
		wantStderr      string
	}{
		"the exit code is kept; no outputs are collected": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh("echo out; exit 3"),
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{"n": {Type: task.TypeInteger, Path: p("outputs/n/n")}}},
				}
			},
			wantCode:        3,
			wantStdout:      "out\n",
			wantTermination: "<none>",
		},
		"a component killed by a signal: 128+N": {
			exec: func(func(string) string) task.Executor {
				return task.Executor{Command: sh("kill -KILL $$")}
			},
			wantCode:        128 + int(syscall.SIGKILL),
			wantTermination: "<none>",
		},
		"inputs resolved, output parameters collected as typed JSON": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`printf '%s\n' "$0" > "$1"; printf 'two words' > "$2"; printf '[1, 2]' > "$3"; echo true > "$4"`,
						"{{$.inputs.parameters['n']}}",
						"{{$.outputs.parameters['n'].output_file}}", "{{$.outputs.parameters['s'].output_file}}",
						"{{$.outputs.parameters['l'].output_file}}", "{{$.outputs.parameters['b'].output_file}}"),
					Inputs: task.ExecutorInputs{Parameters: map[string]task.InputParameter{
						"n": {Type: task.TypeInteger, Files: []task.ParameterFile{{Path: p("inputs/up-n/n"), Type: task.TypeInteger}}},
					}},
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{
						"n": {Type: task.TypeInteger, Path: p("outputs/n/n")},
						"s": {Type: task.TypeString, Path: p("outputs/s/s")},
						"l": {Type: task.TypeList, Path: p("outputs/l/l")},
						"b": {Type: task.TypeBoolean, Path: p("outputs/b/b")},
					}},
				}
			},
			files:           map[string]string{"inputs/up-n/n": "5"},
			wantTermination: `{"b":true,"l":[1,2],"n":5,"s":"two words"}`,
			wantFiles:       map[string]string{"outputs/n/n": "5\n", "outputs/s/s": "two words"},
		},
		"the executor output wins over a file and gives artifacts their metadata": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					// $0 is the executor input; its outputFile is where the
					// executor output goes.
					Command: sh(`echo 1 > "$1"; out=$(echo "$0" | sed 's/.*"outputFile":"\([^"]*\)".*/\1/'); printf '%s' "$2" > "$out"`,
						"{{$}}", "{{$.outputs.parameters['n'].output_file}}",
						`{"parameterValues": {"n": 9007199254740993, "s": "hi", "extra": 1}, "artifacts": {"m": {"artifacts": [{"name": "m", "uri": "`+p("outputs/m/m")+`", "metadata": {"acc": 0.90}}]}}}`),
					Outputs: task.ExecutorOutputs{
						Parameters: map[string]task.OutputParameter{
							"n": {Type: task.TypeInteger, Path: p("outputs/n/n")},
							"s": {Type: task.TypeString, Path: p("outputs/s/s")},
						},
						Artifacts: map[string]task.OutputArtifact{"m": {Type: "system.Metrics", Path: p("outputs/m/m")}},
					},
				}
			},
			wantTermination: `{"n":9007199254740993,"s":"hi"}`,
			wantFiles: map[string]string{
				"outputs/n/n": "9007199254740993", "outputs/s/s": "hi",
				"outputs/m/" + task.MetadataFile: `{"acc":0.90}`,
			},
			wantStderr: "kfp-launcher: executor output " + "EXECUTOR_OUTPUT" + ": the component has no output parameter extra; ignored\n",
		},
		"an executor output that is not JSON fails the task": {
			exec: func(func(string) string) task.Executor {
				return task.Executor{Command: sh(`out=$(echo "$0" | sed 's/.*"outputFile":"\([^"]*\)".*/\1/'); echo '{' > "$out"`, "{{$}}")}
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantStderr:      "kfp-launcher: executor output EXECUTOR_OUTPUT: unexpected EOF; expected KFP's ExecutorOutput as JSON\n",
		},
		"an artifact uri in the executor output is not followed": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`out=$(echo "$0" | sed 's/.*"outputFile":"\([^"]*\)".*/\1/'); printf '%s' "$1" > "$out"`,
						"{{$}}", `{"artifacts": {"m": {"artifacts": [{"uri": "gs://bucket/m"}]}, "x": {"artifacts": []}}}`),
					Outputs: task.ExecutorOutputs{Artifacts: map[string]task.OutputArtifact{"m": {Type: "system.Model", Path: p("outputs/m/m")}}},
				}
			},
			wantTermination: "<none>",
			wantFiles:       map[string]string{"outputs/m/" + task.MetadataFile: "<none>"},
			wantStderr: "kfp-launcher: output artifact m: the executor output gives uri gs://bucket/m; sluice keeps the artifact at ROOT/outputs/m/m and ignores it\n" +
				"kfp-launcher: executor output EXECUTOR_OUTPUT: the component has no output artifact x; ignored\n",
		},
		"a stale executor output and output files of an earlier attempt are removed": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`echo 2 > "$0"`, "{{$.outputs.parameters['n'].output_file}}"),
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{
						"n": {Type: task.TypeInteger, Path: p("outputs/n/n")},
						"s": {Type: task.TypeString, Path: p("outputs/s/s")},
					}},
				}
			},
			files: map[string]string{
				"kfp/outputs/executor_output.json": `{"parameterValues": {"n": 1}}`,
				"outputs/s/s":                      "old",
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantFiles:       map[string]string{"outputs/n/n": "2\n", "outputs/s/s": "<none>"},
			wantStderr:      "kfp-launcher: the component exited 0, but its output parameter s (file ROOT/outputs/s/s) was not written, neither to the file nor in the executor output EXECUTOR_OUTPUT; a task must write all of its outputs\n",
		},
		"a missing output parameter fails the task": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh("true"),
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{
						"a": {Type: task.TypeString, Path: p("outputs/a/a")},
						"b": {Type: task.TypeString, Path: p("outputs/b/b")},
					}},
				}
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantStderr:      "kfp-launcher: the component exited 0, but its output parameters a (file ROOT/outputs/a/a), b (file ROOT/outputs/b/b) were not written, neither to the file nor in the executor output EXECUTOR_OUTPUT; a task must write all of its outputs\n",
		},
		"an output parameter of the wrong type fails the task": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`echo many > "$0"`, "{{$.outputs.parameters['n'].output_file}}"),
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{"n": {Type: task.TypeInteger, Path: p("outputs/n/n")}}},
				}
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantStderr:      `kfp-launcher: output parameter n: file ROOT/outputs/n/n: "many" is not an integer` + "\n",
		},
		"an oversize value is left out of the termination message": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`head -c 5000 /dev/zero | tr '\0' x > "$0"; echo 1 > "$1"`,
						"{{$.outputs.parameters['big'].output_file}}", "{{$.outputs.parameters['n'].output_file}}"),
					Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{
						"big": {Type: task.TypeString, Path: p("outputs/big/big")},
						"n":   {Type: task.TypeInteger, Path: p("outputs/n/n")},
					}},
				}
			},
			wantTermination: `{"n":1}`,
			wantFiles:       map[string]string{"outputs/big/big": strings.Repeat("x", 5000)},
			wantStderr:      "kfp-launcher: output parameter big left out of the termination message, which must stay under 4096 bytes: not in sluice.dev/results, still in its file for downstream tasks\n",
		},
		"no outputs, no termination message": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh(`cat "$0" > "$1"`, "{{$.inputs.artifacts['d'].path}}", "{{$.outputs.artifacts['o'].path}}"),
					Inputs: task.ExecutorInputs{Artifacts: map[string]task.InputArtifact{
						"d": {Type: "system.Dataset", Paths: []string{p("inputs/a-d/d"), p("inputs/b-d/d")}},
					}},
					Outputs: task.ExecutorOutputs{Artifacts: map[string]task.OutputArtifact{"o": {Type: "system.Dataset", Path: p("outputs/o/o")}}},
				}
			},
			files:           map[string]string{"inputs/b-d/d": "from b"},
			wantTermination: "<none>",
			wantFiles:       map[string]string{"outputs/o/o": "from b", "outputs/o/" + task.MetadataFile: "<none>"},
		},
		"an input that has no value: the component does not run": {
			exec: func(p func(string) string) task.Executor {
				return task.Executor{
					Command: sh("echo ran", "{{$.inputs.parameters['x']}}"),
					Inputs: task.ExecutorInputs{Parameters: map[string]task.InputParameter{
						"x": {Type: task.TypeString, Files: []task.ParameterFile{{Path: p("inputs/up-x/x"), Type: task.TypeString}}},
					}},
				}
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantStderr:      "kfp-launcher: placeholder {{$.inputs.parameters['x']}}: input parameter x has no value (none of its files exists: ROOT/inputs/up-x/x); " + `an optional input belongs inside {"IfPresent": {"InputName": "x", ...}}` + "\n",
		},
		"a command that does not exist": {
			exec: func(func(string) string) task.Executor {
				return task.Executor{Command: []string{"no-such-command-sluice"}}
			},
			wantCode:        ExitFailure,
			wantTermination: "<none>",
			wantStderr:      `kfp-launcher: starting the component: exec: "no-such-command-sluice": executable file not found in $PATH` + "\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tl := newTestLauncher(t)
			for p, content := range tc.files {
				tl.write(t, p, content)
			}
			e := tc.exec(tl.path)
			code := tl.Run(&e)
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tc.wantCode, tl.stderr)
			}
			if d := cmp.Diff(tc.wantTermination, tl.read(t, tl.TerminationPath)); d != "" {
				t.Errorf("termination message (-want,+got):\n%s", d)
			}
			for p, want := range tc.wantFiles {
				if d := cmp.Diff(want, tl.read(t, tl.path(p))); d != "" {
					t.Errorf("%s (-want,+got):\n%s", p, d)
				}
			}
			if d := cmp.Diff(tc.wantStdout, tl.stdout.String()); d != "" {
				t.Errorf("stdout (-want,+got):\n%s", d)
			}
			wantStderr := strings.NewReplacer("ROOT", tl.root, "EXECUTOR_OUTPUT", tl.outputFile()).Replace(tc.wantStderr)
			if d := cmp.Diff(wantStderr, tl.stderr.String()); d != "" {
				t.Errorf("stderr (-want,+got):\n%s", d)
			}
		})
	}
}

// The kubelet's SIGTERM reaches the launcher, which passes it on: the
// component's trap decides the exit code.
func TestRunForwardsSignals(t *testing.T) {
	tl := newTestLauncher(t)
	sigs := make(chan os.Signal, 1)
	tl.Signals = sigs
	ready := tl.path("ready")
	// The loop ends by itself after about 10s, so that a failing test
	// leaves no process behind.
	e := task.Executor{Command: sh(`trap 'exit 7' TERM; touch "$0"; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`, ready)}
	code := make(chan int, 1)
	go func() { code <- tl.Run(&e) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the component did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sigs <- syscall.SIGTERM
	select {
	case got := <-code:
		if got != 7 {
			t.Errorf("exit code = %d, want 7 (the component's trap); stderr:\n%s", got, tl.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the component did not exit within 10s of SIGTERM")
	}
}

// {{$}} names the launcher's own executor output file.
func TestRunExecutorInput(t *testing.T) {
	tl := newTestLauncher(t)
	got := tl.path("executor-input.json")
	e := task.Executor{Command: sh(`printf '%s' "$0" > "$1"`, "{{$}}", got)}
	if code := tl.Run(&e); code != 0 {
		t.Fatalf("exit code = %d; stderr:\n%s", code, tl.stderr)
	}
	var in struct {
		Outputs struct {
			OutputFile string `json:"outputFile"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(tl.read(t, got)), &in); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(tl.Dir, "outputs", "executor_output.json")
	if in.Outputs.OutputFile != want {
		t.Errorf("outputFile = %q, want %q", in.Outputs.OutputFile, want)
	}
	if _, err := os.Stat(filepath.Dir(want)); err != nil {
		t.Errorf("the executor output's directory was not made: %v", err)
	}
}

func TestMainCommand(t *testing.T) {
	good, _ := json.Marshal(task.Executor{Command: sh("echo ran")})
	cases := map[string]struct {
		args       []string
		env        string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"no arguments runs the task": {env: string(good), wantStdout: "ran\n"},
		"run runs the task":          {args: []string{"run"}, env: string(good), wantStdout: "ran\n"},
		"no executor": {
			wantCode:   ExitBadSpec,
			wantStderr: "kfp-launcher: $SLUICE_KFP_EXECUTOR is not set; it holds the task as JSON, which sluice's KFP importer writes\n",
		},
		"not JSON": {
			env:        "{",
			wantCode:   ExitBadSpec,
			wantStderr: "kfp-launcher: $SLUICE_KFP_EXECUTOR: unexpected EOF; expected the task as JSON from the same sluice version as this launcher\n",
		},
		"an unknown field": {
			env:        `{"command": ["true"], "image": "x"}`,
			wantCode:   ExitBadSpec,
			wantStderr: `kfp-launcher: $SLUICE_KFP_EXECUTOR: json: unknown field "image"; expected the task as JSON from the same sluice version as this launcher` + "\n",
		},
		"no command": {
			env:        `{"run": "r"}`,
			wantCode:   ExitBadSpec,
			wantStderr: "kfp-launcher: $SLUICE_KFP_EXECUTOR: the command is empty; expected the component's command and args\n",
		},
		"unexpected arguments": {
			args:       []string{"install"},
			wantCode:   ExitBadSpec,
			wantStderr: `kfp-launcher: unexpected arguments ["install"]; usage: kfp-launcher [run]         run the task $SLUICE_KFP_EXECUTOR describes;        kfp-launcher install DEST  copy this executable to DEST` + "\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tl := newTestLauncher(t)
			tl.Getenv = func(k string) string {
				if k == task.ExecutorEnv {
					return tc.env
				}
				return ""
			}
			if code := tl.Main(tc.args); code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tc.wantCode, tl.stderr)
			}
			if d := cmp.Diff(tc.wantStdout, tl.stdout.String()); d != "" {
				t.Errorf("stdout (-want,+got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantStderr, tl.stderr.String()); d != "" {
				t.Errorf("stderr (-want,+got):\n%s", d)
			}
		})
	}
}
