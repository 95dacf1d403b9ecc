package launcher

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/kfp/task"
)

// maxTerminationMessage is the most of a container's termination message the
// kubelet keeps (it keeps the last 4096 bytes of a longer one), so a message
// must be shorter: sluice's controller refuses results of this length
// (annotations.MaxTerminationMessage). It is repeated here so that the
// launcher, a binary copied into every KFP step, does not import the
// Kubernetes packages annotations needs; a test keeps the two equal.
const maxTerminationMessage = 4096

// executorOutput is the part of KFP's ExecutorOutput (protobuf JSON) sluice
// takes: output parameter values and output artifacts' metadata. Artifacts
// stay where the Executor says; a uri the component gives is not followed.
type executorOutput struct {
	ParameterValues map[string]any `json:"parameterValues"`
	Artifacts       map[string]struct {
		Artifacts []struct {
			URI      string         `json:"uri"`
			Metadata map[string]any `json:"metadata"`
		} `json:"artifacts"`
	} `json:"artifacts"`
}

// collect runs after the component succeeded: the executor output, if the
// component wrote one, fills the output parameter files and the output
// artifacts' metadata files; then every output parameter is read from its
// file, and they go to the termination message for sluice's controller.
func (l *Launcher) collect(e *task.Executor) error {
	if err := l.applyExecutorOutput(e); err != nil {
		return err
	}
	values := map[string]any{}
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(e.Outputs.Parameters)) {
		p := e.Outputs.Parameters[name]
		data, err := os.ReadFile(p.Path)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return fmt.Errorf("output parameter %s: %w", name, err)
		}
		v, err := task.ReadParameter(p.Type, data)
		if err != nil {
			return fmt.Errorf("output parameter %s: file %s: %w", name, p.Path, err)
		}
		values[name] = v
	}
	if len(missing) > 0 {
		return l.missingOutputs(e, missing)
	}
	if len(values) == 0 {
		return nil
	}
	msg, left := terminationMessage(values, maxTerminationMessage)
	if len(left) > 0 {
		l.note("output parameter %s left out of the termination message, which must stay under %d bytes: not in sluice.dev/results, still in its file for downstream tasks",
			strings.Join(left, ", "), maxTerminationMessage)
	}
	if err := os.WriteFile(l.terminationPath(), msg, 0o644); err != nil {
		return fmt.Errorf("writing the output parameters: %w", err)
	}
	return nil
}

// missingOutputs explains that the component did not write some output
// parameters: KFP fails such a task, and so does sluice.
func (l *Launcher) missingOutputs(e *task.Executor, names []string) error {
	items := make([]string, len(names))
	for i, name := range names {
		items[i] = fmt.Sprintf("%s (file %s)", name, e.Outputs.Parameters[name].Path)
	}
	what, verb := "output parameter", "was"
	if len(names) > 1 {
		what, verb = "output parameters", "were"
	}
	return fmt.Errorf("the component exited 0, but its %s %s %s not written, neither to the file nor in the executor output %s; a task must write all of its outputs",
		what, strings.Join(items, ", "), verb, l.outputFile())
}

// applyExecutorOutput writes the executor output's values over the output
// parameter files (KFP gives the executor output precedence) and its
// artifacts' metadata beside them.
func (l *Launcher) applyExecutorOutput(e *task.Executor) error {
	path := l.outputFile()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("executor output: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out executorOutput
	if err := dec.Decode(&out); err != nil {
		return fmt.Errorf("executor output %s: %w; expected KFP's ExecutorOutput as JSON", path, err)
	}
	for _, name := range slices.Sorted(maps.Keys(out.ParameterValues)) {
		p, ok := e.Outputs.Parameters[name]
		if !ok {
			l.note("executor output %s: the component has no output parameter %s; ignored", path, name)
			continue
		}
		if err := os.WriteFile(p.Path, task.ParameterFileContent(p.Type, out.ParameterValues[name]), 0o644); err != nil {
			return fmt.Errorf("output parameter %s: %w", name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(out.Artifacts)) {
		a, ok := e.Outputs.Artifacts[name]
		list := out.Artifacts[name].Artifacts
		if !ok {
			l.note("executor output %s: the component has no output artifact %s; ignored", path, name)
			continue
		}
		if len(list) == 0 {
			continue
		}
		if uri := list[0].URI; uri != "" && uri != a.Path {
			l.note("output artifact %s: the executor output gives uri %s; sluice keeps the artifact at %s and ignores it", name, uri, a.Path)
		}
		if len(list[0].Metadata) == 0 {
			continue
		}
		md, err := json.Marshal(list[0].Metadata)
		if err != nil {
			return fmt.Errorf("output artifact %s: metadata: %w", name, err)
		}
		if err := os.WriteFile(metadataPath(a.Path), md, 0o644); err != nil {
			return fmt.Errorf("output artifact %s: metadata: %w", name, err)
		}
	}
	return nil
}

// terminationMessage gives the values as one JSON object shorter than limit
// bytes. Values that do not fit are left out, the largest first, so that
// the small ones a condition tests always get there; left names them.
func terminationMessage(values map[string]any, limit int) (msg []byte, left []string) {
	type entry struct {
		name string
		size int
	}
	var entries []entry
	for name, v := range values {
		k, _ := json.Marshal(name)
		b, err := json.Marshal(v)
		if err != nil {
			left = append(left, name)
			continue
		}
		entries = append(entries, entry{name, len(k) + 1 + len(b)})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.size, b.size), cmp.Compare(a.name, b.name))
	})
	kept := map[string]any{}
	size := len("{}")
	for _, en := range entries {
		add := en.size
		if len(kept) > 0 {
			add++ // the comma
		}
		if size+add >= limit {
			left = append(left, en.name)
			continue
		}
		kept[en.name] = values[en.name]
		size += add
	}
	slices.Sort(left)
	msg, _ = json.Marshal(kept)
	return msg, left
}
