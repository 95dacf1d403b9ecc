// Command sluice-webhook is the sluice manager: it serves the admission
// webhooks and runs the dependency controller.
package main

import (
	"flag"
	"os"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/controller"
	"github.com/sluice-dev/sluice/webhook"
)

func main() {
	var (
		webhookHost, certDir, metricsAddr, probeAddr string
		leaderNS, storageClass, artifactSize         string
		controllerUser, schedulerName                string
		webhookPort, concurrency                     int
		leaderElect, disableWebhooks                 bool
	)
	flag.StringVar(&webhookHost, "webhook-host", "", "address the webhook server listens on (empty: all)")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "port of the webhook server")
	flag.StringVar(&certDir, "cert-dir", "", "directory holding tls.crt and tls.key of the webhook server")
	flag.BoolVar(&disableWebhooks, "disable-webhooks", false, "run only the controller")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that only one replica runs the controller")
	flag.StringVar(&leaderNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace, or default outside a cluster)")
	flag.StringVar(&storageClass, "storage-class", "", "StorageClass of run artifact volumes (empty: the cluster default); sluice.dev/storage-class overrides it")
	flag.StringVar(&artifactSize, "artifact-size", "1Gi", "size of run artifact volumes; sluice.dev/artifact-size overrides it")
	flag.StringVar(&controllerUser, "controller-username", "", "the only user allowed to write sluice.dev/phase, results and reason (default: the manager's own, from a SelfSubjectReview)")
	flag.StringVar(&schedulerName, "scheduler-name", "", "schedulerName given to steps that would use the default scheduler (empty: leave it)")
	flag.IntVar(&concurrency, "concurrent-runs", 4, "runs reconciled in parallel")
	klog.InitFlags(nil)
	flag.Parse()
	ctrl.SetLogger(klog.NewKlogr())
	log := ctrl.Log.WithName("setup")

	size, err := resource.ParseQuantity(artifactSize)
	if err != nil || size.Sign() <= 0 {
		log.Error(err, "Invalid --artifact-size: expected a positive quantity such as 1Gi", "value", artifactSize)
		os.Exit(2)
	}
	if leaderNS == "" {
		leaderNS = podNamespace()
	}

	sluiceObjects := labels.NewSelector()
	req, _ := labels.NewRequirement(annotations.PipelineLabel, selection.Exists, nil)
	sluiceObjects = sluiceObjects.Add(*req)
	runVolumes := labels.NewSelector()
	req, _ = labels.NewRequirement(annotations.RunLabel, selection.Exists, nil)
	runVolumes = runVolumes.Add(*req)

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		// Only sluice objects are cached: the controller never needs the
		// rest of the cluster's Jobs, Pods and claims.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}:                  {Label: sluiceObjects},
			&corev1.Pod{}:                   {Label: sluiceObjects},
			&corev1.PersistentVolumeClaim{}: {Label: runVolumes},
		}},
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "sluice-controller.sluice.dev",
		LeaderElectionNamespace: leaderNS,
		// A replica that stops cleanly hands over at once instead of after the lease expires.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 ctrlwebhook.NewServer(ctrlwebhook.Options{Host: webhookHost, Port: webhookPort, CertDir: certDir}),
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if !disableWebhooks {
		if controllerUser == "" {
			if controllerUser, err = webhook.WhoAmI(ctx, mgr.GetClient()); err != nil {
				log.Error(err, "Unable to learn the controller's identity; set --controller-username")
				os.Exit(1)
			}
		}
		log.Info("Controller-owned keys are writable only by", "user", controllerUser)
		if err := webhook.SetupWebhooks(mgr, webhook.Options{ControllerUsername: controllerUser, SchedulerName: schedulerName}); err != nil {
			log.Error(err, "Unable to set up the webhooks")
			os.Exit(1)
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			log.Error(err, "Unable to add the webhook ready check")
			os.Exit(1)
		}
	}
	r := controller.NewRunReconciler(mgr.GetClient(), mgr.GetEventRecorder("sluice-controller"), controller.Options{
		StorageClass: storageClass, ArtifactSize: size, MaxConcurrentReconciles: concurrency,
	})
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Unable to set up the controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		log.Error(err, "Unable to add the health check")
		os.Exit(1)
	}
	log.Info("Starting manager", "version", version)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// podNamespace is the namespace the manager runs in, or "default" outside a cluster.
func podNamespace() string {
	if ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(ns))
	}
	return "default"
}
