package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/sluice-dev/sluice/lint"
)

func newLintCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var files []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "lint -f FILE|DIR|- [-f ...]",
		Short: "Check pipeline files offline, as admission would",
		Long: `lint reads Kubernetes objects from YAML or JSON files (several documents to
a file, a List, the output of helm template or kustomize build) and checks
the sluice steps among them as sluice's admission webhooks would, without a
cluster: the keys and their values, each run's graph (cycles, upstreams
and inputs that are not in the files, duplicate tasks, groups), conditions,
resources. It prints every problem at once, one per line:

  FILE:LINE: KIND/NAME: KEY: MESSAGE

and exits 1 when there is any, 0 with a one-line summary otherwise.
Objects without a namespace are checked in the one kubectl apply would put
them in (-n, else the kubeconfig context's, else default).`,
		Example: `  kubectl sluice lint -f examples/ml-pipeline.yaml
  kubectl sluice lint -f pipelines/ -R
  helm template my-pipeline ./chart | kubectl sluice lint -f -
  kustomize build overlays/prod | kubectl sluice lint -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("lint: name what to check with -f (a file, a directory, or - for standard input)")
			}
			ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
			if err != nil || ns == "" {
				ns = metav1.NamespaceDefault
			}
			sources, err := readSources(cmd.InOrStdin(), files, recursive)
			if err != nil {
				return err
			}
			res := lint.Check(sources, ns)
			out := cmd.OutOrStdout()
			for _, p := range res.Problems {
				fmt.Fprintln(out, p)
			}
			if len(res.Problems) > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "kubectl sluice lint:", res)
				return exitError{1}
			}
			fmt.Fprintln(out, "kubectl sluice lint:", res)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file, a directory (its .yaml, .yml and .json files) or - (standard input); repeatable")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read the directories named by -f recursively")
	return cmd
}

// readSources reads what -f names, in that order: "-" is standard input, a
// directory its manifests (sorted by name).
func readSources(stdin io.Reader, paths []string, recursive bool) ([]lint.Source, error) {
	var out []lint.Source
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			out = append(out, lint.Source{Name: "stdin", Data: data})
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("lint: %w", err)
		}
		if !info.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("lint: %w", err)
			}
			out = append(out, lint.Source{Name: p, Data: data})
			continue
		}
		found := 0
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && path != p && !recursive:
				return filepath.SkipDir
			case d.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, filepath.Ext(path)):
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			found++
			out = append(out, lint.Source{Name: path, Data: data})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lint: %w", err)
		}
		if found == 0 {
			return nil, fmt.Errorf("lint: directory %s has no .yaml, .yml or .json files", p)
		}
	}
	return out, nil
}
