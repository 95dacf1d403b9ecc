// Package launcher runs one KFP container task inside its step, as KFP's own
// launcher does: it resolves the command's placeholders from the Executor
// the converter wrote (task.ExecutorEnv), runs the component with the
// signals the container gets passed on, and on success collects its output
// parameters into their files and the container's termination message.
package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sluice-dev/sluice/kfp/task"
)

// Exit codes of the launcher's own failures; otherwise it exits as the
// component did.
const (
	ExitFailure = 1 // the task failed: an input or an output is missing or wrong
	ExitBadSpec = 2 // the command line or the Executor cannot be read
)

// Signals are the signals the launcher passes on to the component.
var Signals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT}

// Launcher runs KFP container tasks. Empty paths take package task's defaults.
type Launcher struct {
	// Dir is the launcher's directory (task.LauncherDir), which holds the
	// executor output file.
	Dir string
	// TerminationPath is where the output parameters go, as one JSON object
	// (task.TerminationPath).
	TerminationPath string
	// Signals received while the component runs are passed on to it.
	Signals <-chan os.Signal
	// Stdin, Stdout and Stderr are the component's; the launcher writes its
	// own messages, one line each, to Stderr. Nil is the null device.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv).
	Getenv func(string) string
}

const usage = `usage: kfp-launcher [run]         run the task $` + task.ExecutorEnv + ` describes
       kfp-launcher install DEST  copy this executable to DEST`

// Main runs the launcher's command line and gives its exit code.
func (l *Launcher) Main(args []string) int {
	switch {
	case len(args) == 0 || len(args) == 1 && args[0] == "run":
		e, err := l.executor()
		if err != nil {
			return l.fail(err, ExitBadSpec)
		}
		return l.Run(e)
	case len(args) == 2 && args[0] == "install":
		exe, err := os.Executable()
		if err == nil {
			err = Install(exe, args[1])
		}
		if err != nil {
			return l.fail(err, ExitFailure)
		}
		return 0
	}
	return l.fail(fmt.Errorf("unexpected arguments %q\n%s", args, usage), ExitBadSpec)
}

// executor reads the Executor from the environment, strictly: a field this
// launcher does not know means the converter is newer than it.
func (l *Launcher) executor() (*task.Executor, error) {
	getenv := l.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	spec := getenv(task.ExecutorEnv)
	if spec == "" {
		return nil, fmt.Errorf("$%s is not set; it holds the task as JSON, which sluice's KFP importer writes", task.ExecutorEnv)
	}
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.DisallowUnknownFields()
	var e task.Executor
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("$%s: %w; expected the task as JSON from the same sluice version as this launcher", task.ExecutorEnv, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("$%s: unexpected data after the JSON object", task.ExecutorEnv)
	}
	if len(e.Command) == 0 {
		return nil, fmt.Errorf("$%s: the command is empty; expected the component's command and args", task.ExecutorEnv)
	}
	return &e, nil
}

// Run runs the task e describes and gives the launcher's exit code.
func (l *Launcher) Run(e *task.Executor) int {
	argv, err := l.prepare(e)
	if err != nil {
		return l.fail(err, ExitFailure)
	}
	code, err := l.runChild(argv)
	if err != nil {
		return l.fail(err, ExitFailure)
	}
	if code != 0 {
		return code
	}
	if err := l.collect(e); err != nil {
		return l.fail(err, ExitFailure)
	}
	return 0
}

// prepare resolves the command line and makes the outputs' directories. It
// removes what an earlier attempt in the same pod may have left (the
// executor output, output parameter and metadata files), so that only this
// run's outputs count.
func (l *Launcher) prepare(e *task.Executor) ([]string, error) {
	values, err := task.NewResolver(e, task.OSFiles{})
	if err != nil {
		return nil, err
	}
	values.OutputFile = l.outputFile()
	argv, err := task.ExpandAll(e.Command, values)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("the command is empty once its placeholders are resolved")
	}
	stale := []string{values.OutputFile}
	for _, p := range e.Outputs.Parameters {
		stale = append(stale, p.Path)
	}
	for _, a := range e.Outputs.Artifacts {
		stale = append(stale, metadataPath(a.Path))
	}
	for _, path := range stale {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return argv, nil
}

func (l *Launcher) outputFile() string {
	rel, _ := filepath.Rel(task.LauncherDir, task.ExecutorOutputFile)
	return filepath.Join(l.dir(), rel)
}

func (l *Launcher) dir() string {
	if l.Dir == "" {
		return task.LauncherDir
	}
	return l.Dir
}

func (l *Launcher) terminationPath() string {
	if l.TerminationPath == "" {
		return task.TerminationPath
	}
	return l.TerminationPath
}

// metadataPath is the file holding the metadata of the artifact at path.
func metadataPath(path string) string {
	return filepath.Join(filepath.Dir(path), task.MetadataFile)
}

// fail reports the launcher's own error as one line and gives code.
func (l *Launcher) fail(err error, code int) int {
	l.note("%s", err)
	return code
}

// note writes one line of the launcher's to Stderr.
func (l *Launcher) note(format string, args ...any) {
	if l.Stderr == nil {
		return
	}
	msg := strings.ReplaceAll(strings.TrimSpace(fmt.Sprintf(format, args...)), "\n", "; ")
	var b bytes.Buffer
	b.WriteString("kfp-launcher: ")
	b.WriteString(msg)
	b.WriteByte('\n')
	_, _ = l.Stderr.Write(b.Bytes())
}
