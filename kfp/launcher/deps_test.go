package launcher

import (
	"go/build"
	"strings"
	"testing"
)

// The launcher is copied into every KFP step, so it stays small: it imports
// only the standard library and package task, and task only the standard
// library, never the Kubernetes packages that kfp and annotations need.
func TestImportsStayStandard(t *testing.T) {
	const taskPkg = "github.com/sluice-dev/sluice/kfp/task"
	for _, dir := range []string{".", "../task"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			first, _, _ := strings.Cut(imp, "/")
			if imp != taskPkg && strings.Contains(first, ".") {
				t.Errorf("package %s imports %s; expected only the standard library and %s, to keep the launcher binary small", pkg.Name, imp, taskPkg)
			}
		}
	}
}
