// Command sluice-provisioner is the storage provisioner of the local
// development cluster (hack/dev-up.sh). It binds PersistentVolumeClaims of
// StorageClasses whose provisioner is "sluice.dev/local-path" (the
// sluice-local class of hack/kwok/storageclass.yaml) to hostPath
// PersistentVolumes backed by a directory per volume under --root, and
// removes that directory when a released volume's reclaim policy is Delete.
//
// The simulated kwok nodes all live on this one machine, so such a volume is
// valid on every node and may be ReadWriteOnce or ReadWriteMany. It runs as
// an ordinary process next to the control plane, not in the cluster:
//
//	sluice-provisioner --kubeconfig .kwok/kubeconfig --root .kwok/volumes
//
// It is a development tool built on
// sigs.k8s.io/sig-storage-lib-external-provisioner; it is not meant for real
// clusters.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig of the cluster (default $KUBECONFIG)")
	root := flag.String("root", ".kwok/volumes", "directory under which a directory per volume is created")
	name := flag.String("provisioner-name", ProvisionerName, "StorageClass provisioner name to serve")
	threads := flag.Int("threads", 4, "number of claims and volumes processed in parallel")
	flag.Parse()

	if err := run(*kubeconfig, *root, *name, *threads); err != nil {
		klog.ErrorS(err, "Provisioner failed")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
	klog.Flush()
}

func run(kubeconfig, root, name string, threads int) error {
	if kubeconfig == "" {
		return fmt.Errorf("--kubeconfig (or $KUBECONFIG) is required")
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(absRoot, 0o755); err != nil {
		return fmt.Errorf("create root: %w", err)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "sluice-provisioner"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())

	klog.InfoS("Starting sluice-provisioner", "provisioner", name, "root", absRoot, "kubeconfig", kubeconfig)
	pc := controller.NewProvisionController(ctx, client, name, &localPath{root: absRoot},
		// One process per dev cluster (dev-up keeps a pidfile): a lease
		// would only delay a restart by its expiry.
		controller.LeaderElection(false),
		controller.Threadiness(threads),
		controller.ResyncPeriod(time.Minute),
		controller.FailedProvisionThreshold(5),
		controller.FailedDeleteThreshold(5),
	)
	pc.Run(ctx)
	klog.InfoS("Stopped sluice-provisioner")
	return nil
}
