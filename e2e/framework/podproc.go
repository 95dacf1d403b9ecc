package framework

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PodProcess finds, among this machine's processes, the container process
// of a pod on the local cluster's real node: the one started from binary
// (argv[0]) whose HOSTNAME, which the kubelet sets to the pod's name, is
// pod. It returns the process ID.
func PodProcess(binary, pod string) (string, error) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.HasPrefix(cmdline, []byte(binary+"\x00")) {
			continue
		}
		environ, err := os.ReadFile(filepath.Join(d, "environ"))
		if err == nil && bytes.Contains(append([]byte{0}, environ...), []byte("\x00HOSTNAME="+pod+"\x00")) {
			return filepath.Base(d), nil
		}
	}
	return "", fmt.Errorf("no process of %s runs on this machine for pod %s", binary, pod)
}

// ProcessMemory returns a process's resident memory now (VmRSS) and at its
// peak (VmHWM), in MiB.
func ProcessMemory(pid string) (rss, peak float64, err error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%s/status", pid)
	}
	return rss, peak, nil
}
