// Command sluice-gpu-plugin is a kubelet device plugin that advertises
// simulated GPUs (nvidia.com/gpu by default) on the local cluster's real
// node, so that GPU steps are scheduled there and run for real, on the CPU.
// The devices do not exist: a container given some gets their IDs in
// SLUICE_SIMULATED_GPUS and NVIDIA_VISIBLE_DEVICES, nothing else.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func main() {
	p := &Plugin{Socket: "sluice-gpu.sock"}
	flag.StringVar(&p.Resource, "resource", "nvidia.com/gpu", "extended resource the devices are advertised as")
	flag.IntVar(&p.Count, "count", 2, "number of simulated devices")
	flag.StringVar(&p.Dir, "device-plugin-dir", pluginapi.DevicePluginPath, "the kubelet's device-plugin directory (holds kubelet.sock)")
	klog.InitFlags(nil)
	flag.Parse()
	if p.Count < 1 {
		klog.ErrorS(nil, "--count must be at least 1", "count", p.Count)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := p.Serve(ctx); err != nil {
		klog.ErrorS(err, "Device plugin failed")
		os.Exit(1)
	}
}
