package framework

import (
	"os"
	"strconv"
	"testing"
)

func TestProcessMemory(t *testing.T) {
	rss, peak, err := ProcessMemory(strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss {
		t.Errorf("this process: RSS %.1f MiB, peak %.1f MiB; want 0 < RSS <= peak", rss, peak)
	}
	if _, _, err := ProcessMemory("0"); err == nil {
		t.Error("process 0 has no /proc entry, but its memory was read")
	}
}
