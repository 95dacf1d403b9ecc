package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Where the time goes: the CPU seconds each process of the local cluster
// spent during a measurement, from /proc (the 2 cores are shared by all of
// them, so a contender that makes the API server work harder is slower).

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// processes returns the cluster's processes by name: the control plane's
// (kwokctl's pid files), sluice's leading manager and its scheduler.
func (cl *cluster) processes(ctx context.Context) map[string]string {
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(cl.stateDir, "clusters", "*", "pids", "*.pid"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(filepath.Base(f), ".pid")] = strings.TrimSpace(string(data))
	}
	if pid, err := cl.managerPID(ctx); err == nil {
		out["sluice-manager"] = pid
	}
	if pid, err := cl.schedulerPID(ctx); err == nil {
		out["sluice-scheduler"] = pid
	}
	return out
}

// cpuSeconds is the user and system CPU time of process pid, or -1.
func cpuSeconds(pid string) float64 {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis (state is field 3, utime 14, stime 15).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / clockTicks
}

// cpuMeter measures the CPU time of a set of processes from its creation
// to the call of the function it returns.
func cpuMeter(procs map[string]string) func() map[string]float64 {
	before := map[string]float64{}
	for name, pid := range procs {
		before[name] = cpuSeconds(pid)
	}
	return func() map[string]float64 {
		used := map[string]float64{}
		for name, pid := range procs {
			if b, a := before[name], cpuSeconds(pid); b >= 0 && a >= b {
				used[name] = a - b
			}
		}
		return used
	}
}

// cpuTable prints the CPU seconds of each contender's run by process.
func cpuTable(rows []string, cpu map[string]map[string]float64) string {
	var procs []string
	for _, c := range rows {
		for p := range cpu[c] {
			if !slices.Contains(procs, p) {
				procs = append(procs, p)
			}
		}
	}
	if len(procs) == 0 {
		return ""
	}
	slices.Sort(procs)
	var sb strings.Builder
	sb.WriteString("\nCPU seconds during the run, by process (2 cores):\n\n| contender | " + strings.Join(procs, " | ") + " | total |\n|---|" + strings.Repeat("---:|", len(procs)+1) + "\n")
	for _, c := range rows {
		total := 0.0
		sb.WriteString("| " + c + " |")
		for _, p := range procs {
			v, ok := cpu[c][p]
			if !ok {
				sb.WriteString(" |")
				continue
			}
			total += v
			fmt.Fprintf(&sb, " %.1f |", v)
		}
		fmt.Fprintf(&sb, " %.1f |\n", total)
	}
	return sb.String()
}
