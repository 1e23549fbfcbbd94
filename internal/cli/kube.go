package cli

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// kubeClient connects to the cluster of a kubeconfig the way kubectl does: --kubeconfig, else $KUBECONFIG,
// else ~/.kube/config, else the in-cluster configuration; kubeContext ("" for the current one) picks the
// context. It also returns the context's namespace ("default" when it names none). The client knows core/v1
// and herald.dev/v1alpha1.
func kubeClient(kubeconfig, kubeContext string) (client.Client, string, error) {
	rc, ns, err := kubeConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to %s: %w", rc.Host, err)
	}
	return c, ns, nil
}

// kubeConfig loads a kubeconfig as kubeClient does, and returns it with the context's namespace.
func kubeConfig(kubeconfig, kubeContext string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	return rc, ns, nil
}
