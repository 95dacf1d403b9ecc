// Command sluice-webhook is the sluice manager: it serves the admission
// webhooks and runs the dependency controller.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/controller"
	"github.com/sluice-dev/sluice/index"
	"github.com/sluice-dev/sluice/webhook"
	"github.com/sluice-dev/sluice/webhook/certs"
)

func main() {
	var (
		webhookHost, certDir, metricsAddr, probeAddr     string
		pprofAddr                                        string
		leaderNS, storageClass, artifactSize, accessMode string
		controllerUser, schedulerName, taskEvents        string
		webhookPort, concurrency, apiBurst               int
		apiQPS                                           float64
		startDeadline                                    time.Duration
		leaderElect, disableWebhooks, certRotation       bool
		certSecret, certDNSNames                         string
		mutatingConfig, validatingConfig                 string
	)
	flag.StringVar(&webhookHost, "webhook-host", "", "address the webhook server listens on (empty: all)")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "port of the webhook server")
	flag.StringVar(&certDir, "cert-dir", "", "directory holding tls.crt and tls.key of the webhook server")
	flag.BoolVar(&disableWebhooks, "disable-webhooks", false, "run only the controller")
	flag.BoolVar(&certRotation, "cert-rotation", false, "issue and rotate the webhook's serving certificate in --cert-secret and inject its CA into the webhook configurations, instead of reading --cert-dir (installations without cert-manager)")
	flag.StringVar(&certSecret, "cert-secret", "sluice-webhook-cert", "with --cert-rotation: the existing Secret that holds the CA and serving certificate, as namespace/name, or name in the pod's namespace")
	flag.StringVar(&certDNSNames, "cert-dns-names", "", "with --cert-rotation: comma-separated DNS names of the webhook Service, such as sluice-webhook.sluice-system.svc; the first is the certificate's common name")
	flag.StringVar(&mutatingConfig, "mutating-webhook-configuration", "sluice", "with --cert-rotation: the MutatingWebhookConfiguration whose webhooks get the CA as caBundle")
	flag.StringVar(&validatingConfig, "validating-webhook-configuration", "sluice", "with --cert-rotation: the ValidatingWebhookConfiguration whose webhooks get the CA as caBundle")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints, for profiling (0: off; keep it on loopback)")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that only one replica runs the controller")
	flag.StringVar(&leaderNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace, or default outside a cluster)")
	flag.StringVar(&storageClass, "storage-class", "", "StorageClass of run artifact volumes (empty: the cluster default); sluice.dev/storage-class overrides it")
	flag.StringVar(&accessMode, "artifact-access-mode", controller.AccessModeAuto, "access mode of run artifact volumes: auto (ReadWriteMany where the StorageClass serves it, else ReadWriteOnce), ReadWriteOnce or ReadWriteMany")
	flag.StringVar(&artifactSize, "artifact-size", "1Gi", "size of run artifact volumes; sluice.dev/artifact-size overrides it")
	flag.StringVar(&controllerUser, "controller-username", "", "the only user allowed to write sluice.dev/phase, results and reason (default: the manager's own, from a SelfSubjectReview)")
	flag.StringVar(&schedulerName, "scheduler-name", "", "schedulerName given to steps that would use the default scheduler (empty: leave it)")
	flag.IntVar(&concurrency, "concurrent-runs", 4, "runs reconciled in parallel")
	flag.StringVar(&taskEvents, "task-events", controller.TaskEventsAll, "which Events the controller emits about tasks: all (every release and outcome) or failures (Warning events and the run's outcome only)")
	flag.DurationVar(&startDeadline, "start-deadline", controller.DefaultStartDeadline, "how long a released step's pod may be unable to start (unschedulable, image not pulled, a volume that cannot be served) before its task fails with that reason; sluice.dev/start-deadline overrides it per task; 0: never")
	flag.Float64Var(&apiQPS, "kube-api-qps", -1, "client-side limit of requests per second to the API server; negative: none, the API server's priority and fairness decides (controller-runtime's default)")
	flag.IntVar(&apiBurst, "kube-api-burst", 0, "burst of requests above --kube-api-qps (0: client-go's default when a limit is set)")
	klog.InitFlags(nil)
	flag.Parse()
	ctrl.SetLogger(klog.NewKlogr())
	log := ctrl.Log.WithName("setup")

	if startDeadline < 0 {
		log.Error(nil, "Invalid --start-deadline: expected a duration such as 15m, or 0 for none", "value", startDeadline)
		os.Exit(2)
	}
	if taskEvents != controller.TaskEventsAll && taskEvents != controller.TaskEventsFailures {
		log.Error(nil, "Invalid --task-events: expected all or failures", "value", taskEvents)
		os.Exit(2)
	}
	switch accessMode {
	case controller.AccessModeAuto, controller.AccessModeRWO, controller.AccessModeRWX:
	default:
		log.Error(nil, "Invalid --artifact-access-mode: expected auto, ReadWriteOnce or ReadWriteMany", "value", accessMode)
		os.Exit(2)
	}
	size, err := resource.ParseQuantity(artifactSize)
	if err != nil || size.Sign() <= 0 {
		log.Error(err, "Invalid --artifact-size: expected a positive quantity such as 1Gi", "value", artifactSize)
		os.Exit(2)
	}
	if leaderNS == "" {
		leaderNS = podNamespace()
	}
	var certOpts certs.Options
	if certRotation {
		switch {
		case disableWebhooks:
			log.Error(nil, "Invalid --cert-rotation with --disable-webhooks: there is no webhook to serve a certificate for; drop one of them")
			os.Exit(2)
		case certDir != "":
			log.Error(nil, "Invalid --cert-rotation with --cert-dir: the certificate comes either from --cert-secret or from files; drop one of them", "certDir", certDir)
			os.Exit(2)
		}
		certOpts = certs.Options{
			Secret:                         secretRef(certSecret),
			DNSNames:                       splitList(certDNSNames),
			MutatingWebhookConfiguration:   mutatingConfig,
			ValidatingWebhookConfiguration: validatingConfig,
		}
		if errs := certOpts.Validate(); len(errs) > 0 {
			for _, e := range errs {
				e.Field = certFlags.Replace(e.Field)
			}
			log.Error(errs.ToAggregate(), "Invalid certificate rotation flags")
			os.Exit(2)
		}
	}
	webhookOpts := ctrlwebhook.Options{Host: webhookHost, Port: webhookPort, CertDir: certDir}
	var rot *certs.Rotator
	if certRotation {
		// The server applies TLSOpts when it starts, once rot is set below.
		// Given GetCertificate, it does not watch certificate files.
		webhookOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = rot.GetCertificate }}
	}

	sluiceObjects := labels.NewSelector()
	req, _ := labels.NewRequirement(annotations.PipelineLabel, selection.Exists, nil)
	sluiceObjects = sluiceObjects.Add(*req)
	runVolumes := labels.NewSelector()
	req, _ = labels.NewRequirement(annotations.RunLabel, selection.Exists, nil)
	runVolumes = runVolumes.Add(*req)

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(apiQPS), apiBurst
	if apiQPS == 0 {
		log.Error(nil, "Invalid --kube-api-qps 0: it would allow no request; use a negative value for no client-side limit")
		os.Exit(2)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// Only sluice objects are cached: the controller never needs the
		// rest of the cluster's Jobs, Pods and claims. Without their
		// managedFields, which nothing here reads. Jobs and Pods are read
		// without a copy (a run of 10,000 steps keeps each in memory once,
		// not once in the cache and again in the controller's model): the
		// controller copies an object before it changes it.
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&batchv1.Job{}:                  {Label: sluiceObjects, UnsafeDisableDeepCopy: ptr.To(true)},
				&corev1.Pod{}:                   {Label: sluiceObjects, UnsafeDisableDeepCopy: ptr.To(true)},
				&corev1.PersistentVolumeClaim{}: {Label: runVolumes},
			},
		},
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "sluice-controller.sluice.dev",
		LeaderElectionNamespace: leaderNS,
		// A replica that stops cleanly hands over at once instead of after the lease expires.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 ctrlwebhook.NewServer(webhookOpts),
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
		tasks, err := index.Setup(ctx, mgr)
		if err != nil {
			log.Error(err, "Unable to set up the task index")
			os.Exit(1)
		}
		if err := webhook.SetupWebhooks(mgr, webhook.Options{ControllerUsername: controllerUser, SchedulerName: schedulerName, Tasks: tasks}); err != nil {
			log.Error(err, "Unable to set up the webhooks")
			os.Exit(1)
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			log.Error(err, "Unable to add the webhook ready check")
			os.Exit(1)
		}
		if certRotation {
			// Only Get and Update, by name, without a cache: the RBAC grants
			// no list or watch on Secrets and webhook configurations.
			if rot, err = certs.New(mgr.GetAPIReader(), mgr.GetClient(), certOpts); err != nil {
				log.Error(err, "Unable to set up certificate rotation")
				os.Exit(1)
			}
			if err := mgr.Add(rot); err != nil {
				log.Error(err, "Unable to add certificate rotation")
				os.Exit(1)
			}
			if err := mgr.AddReadyzCheck("certificate", rot.ReadyCheck); err != nil {
				log.Error(err, "Unable to add the certificate ready check")
				os.Exit(1)
			}
		}
	}
	r := controller.NewRunReconciler(mgr.GetClient(), mgr.GetEventRecorder("sluice-controller"), controller.Options{
		StorageClass: storageClass, AccessMode: accessMode, ArtifactSize: size, MaxConcurrentReconciles: concurrency,
		TaskEvents: taskEvents, StartDeadline: startDeadline,
	})
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Unable to set up the controller")
		os.Exit(1)
	}
	if err := controller.NewFinalizerReconciler(mgr.GetClient(), concurrency).SetupWithManager(mgr); err != nil {
		log.Error(err, "Unable to set up the results finalizer's controller")
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

// certFlags renames the fields of certs.Options in validation errors to
// the flags that set them.
var certFlags = strings.NewReplacer(
	"secret", "--cert-secret",
	"dnsNames", "--cert-dns-names",
	"mutatingWebhookConfiguration", "--mutating-webhook-configuration",
	"validatingWebhookConfiguration", "--validating-webhook-configuration",
)

// secretRef reads --cert-secret: namespace/name, or a name in the pod's namespace.
func secretRef(value string) types.NamespacedName {
	if ns, name, ok := strings.Cut(value, "/"); ok {
		return types.NamespacedName{Namespace: ns, Name: name}
	}
	return types.NamespacedName{Namespace: podNamespace(), Name: value}
}

// splitList reads a comma-separated flag, ignoring blanks around and between items.
func splitList(value string) []string {
	var items []string
	for item := range strings.SplitSeq(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// podNamespace is the namespace the manager runs in, or "default" outside a cluster.
func podNamespace() string {
	if ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(ns))
	}
	return "default"
}
