package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// SimulatedEnv is set in every container given simulated GPUs: the IDs of
// its devices. The devices do not exist; a step can tell that it ran on one.
const SimulatedEnv = "SLUICE_SIMULATED_GPUS"

// Plugin advertises Count simulated devices of Resource to the kubelet
// through the device-plugin API. Allocating them sets environment variables
// only: no device node, no driver, no GPU.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	Resource string
	Count    int
	// Dir is the kubelet's device-plugin directory: its registration socket
	// (kubelet.sock) is there, and the plugin's own socket goes there too.
	Dir string
	// Socket is the plugin's socket file name in Dir.
	Socket string
}

var _ pluginapi.DevicePluginServer = (*Plugin)(nil)

func (p *Plugin) devices() []*pluginapi.Device {
	devs := make([]*pluginapi.Device, p.Count)
	for i := range devs {
		devs[i] = &pluginapi.Device{ID: fmt.Sprintf("sim-gpu-%d", i), Health: pluginapi.Healthy}
	}
	return devs
}

// GetDevicePluginOptions asks for no PreStartContainer or preferred-allocation calls.
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the devices once (they never change) and then holds
// the stream open until the kubelet closes it.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices()}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// Allocate gives each container the IDs of its devices in the environment,
// under SimulatedEnv and the NVIDIA runtime's NVIDIA_VISIBLE_DEVICES.
func (p *Plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		for _, id := range c.DevicesIds {
			if !strings.HasPrefix(id, "sim-gpu-") {
				return nil, fmt.Errorf("unknown device %q: this plugin only has sim-gpu-0..%d", id, p.Count-1)
			}
		}
		ids := strings.Join(c.DevicesIds, ",")
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{SimulatedEnv: ids, "NVIDIA_VISIBLE_DEVICES": ids},
		})
	}
	return resp, nil
}

// Serve serves the plugin on its socket and registers it with the kubelet,
// again whenever the socket disappears (the kubelet empties its
// device-plugin directory when it restarts), until ctx ends.
func (p *Plugin) Serve(ctx context.Context) error {
	for {
		srv, err := p.start()
		if err != nil {
			return err
		}
		if err := p.register(ctx); err != nil {
			srv.Stop()
			klog.ErrorS(err, "Registering with the kubelet failed; retrying")
		} else {
			klog.InfoS("Registered with the kubelet", "resource", p.Resource, "devices", p.Count)
		}
		p.waitSocketGone(ctx)
		srv.Stop()
		if ctx.Err() != nil {
			return nil
		}
		time.Sleep(time.Second)
	}
}

func (p *Plugin) start() (*grpc.Server, error) {
	path := filepath.Join(p.Dir, p.Socket)
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(l) }()
	return srv, nil
}

func (p *Plugin) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+filepath.Join(p.Dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: p.Socket, ResourceName: p.Resource,
	}, grpc.WaitForReady(true))
	return err
}

// waitSocketGone returns when the plugin's socket file is removed or
// replaced, or when ctx ends.
func (p *Plugin) waitSocketGone(ctx context.Context) {
	path := filepath.Join(p.Dir, p.Socket)
	first, err := os.Stat(path)
	if err != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if fi, err := os.Stat(path); err != nil || !os.SameFile(first, fi) {
				klog.InfoS("Plugin socket is gone (kubelet restarted?); registering again", "socket", path)
				return
			}
		}
	}
}
