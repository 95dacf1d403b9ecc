package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// apiProbe asks the API server for its version with the pod's own
// ServiceAccount token and CA, as an in-cluster client does, then tries an
// address off this machine, which must stay out of reach.
const apiProbe = `
import json, os, socket, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
url = "https://%s:%s/version" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "/token").read()})
version = json.load(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=sa + "/ca.crt"), timeout=5))["gitVersion"]
try:
    socket.create_connection(("192.0.2.1", 80), timeout=3)
    outside = "reachable"
except OSError:
    outside = "unreachable"
open("/dev/termination-log", "w").write(json.dumps({"version": version, "outside": outside}))
`

// TestRealPodReachesAPIServer: a pod on the real node reaches the API
// server at the kubernetes Service's endpoint, with its ServiceAccount's
// token and the cluster CA (as sluice's own pods will), and nothing beyond
// this machine.
func TestRealPodReachesAPIServer(t *testing.T) {
	ns, _ := setup(t)
	var slices discoveryv1.EndpointSliceList
	if err := cluster.Client.List(context.Background(), &slices, client.InNamespace("default"),
		client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil || len(slices.Items) == 0 {
		t.Fatalf("the kubernetes Service's endpoints: %v", err)
	}
	ep := slices.Items[0]
	host, port := ep.Endpoints[0].Addresses[0], strconv.Itoa(int(*ep.Ports[0].Port))
	p := utiltesting.MakePod("probe", ns).Obj()
	p.Labels = nil
	c := &p.Spec.Containers[0]
	c.Image = "localhost/sluice/python:dev"
	c.Command = []string{"python3", "-c", apiProbe}
	c.Env = []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: host}, {Name: "KUBERNETES_SERVICE_PORT", Value: port}}
	create(t, p)
	got := waitPodSucceeded(t, ns, "probe")
	if got.Spec.NodeName != framework.RealNode {
		t.Fatalf("the probe ran on %s, want the real node", got.Spec.NodeName)
	}
	msg := got.Status.ContainerStatuses[0].State.Terminated.Message
	if !strings.Contains(msg, `"version": "v1.37`) || !strings.Contains(msg, `"outside": "unreachable"`) {
		t.Errorf("the probe said %s; want the API server's version and no route off the machine", msg)
	}
}
