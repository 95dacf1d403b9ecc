package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakeKubelet is the kubelet's registration service: it records requests.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	got chan *pluginapi.RegisterRequest
}

func (k *fakeKubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.got <- r
	return &pluginapi.Empty{}, nil
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{got: make(chan *pluginapi.RegisterRequest, 4)}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return k
}

func (k *fakeKubelet) next(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not register")
		return nil
	}
}

func TestRegistersServesAndReregisters(t *testing.T) {
	// Unix socket paths are short: keep the directory near the root.
	dir, err := os.MkdirTemp("", "gpu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	kubelet := startKubelet(t, dir)
	p := &Plugin{Resource: "nvidia.com/gpu", Count: 2, Dir: dir, Socket: "sluice-gpu.sock"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Serve(ctx) }()

	want := &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "sluice-gpu.sock", ResourceName: "nvidia.com/gpu"}
	if diff := cmp.Diff(want.String(), kubelet.next(t).String()); diff != "" {
		t.Errorf("registration (-want,+got):\n%s", diff)
	}

	// The kubelet's side: list the devices and allocate one.
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "sluice-gpu.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pluginapi.NewDevicePluginClient(conn)
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range list.Devices {
		if d.Health != pluginapi.Healthy {
			t.Errorf("device %s is %s, want Healthy", d.ID, d.Health)
		}
		ids = append(ids, d.ID)
	}
	if diff := cmp.Diff([]string{"sim-gpu-0", "sim-gpu-1"}, ids); diff != "" {
		t.Errorf("devices (-want,+got):\n%s", diff)
	}
	resp, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"sim-gpu-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{SimulatedEnv: "sim-gpu-1", "NVIDIA_VISIBLE_DEVICES": "sim-gpu-1"}
	if diff := cmp.Diff(wantEnv, resp.ContainerResponses[0].Envs); diff != "" {
		t.Errorf("allocation env (-want,+got):\n%s", diff)
	}
	if _, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-1234"}}}}); err == nil {
		t.Error("allocating a device the plugin does not have succeeded")
	}

	// A restarted kubelet empties the directory: the plugin comes back.
	if err := os.Remove(filepath.Join(dir, "sluice-gpu.sock")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), kubelet.next(t).String()); diff != "" {
		t.Errorf("second registration (-want,+got):\n%s", diff)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after its context ended")
	}
}
