package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Selector selects objects by their labels. It has the shape of a Kubernetes label selector (matchLabels and
// matchExpressions, ANDed together) with bounded sizes, so that mistakes are refused with a readable message when
// the resource is applied instead of surfacing later. An empty selector selects everything.
// +kubebuilder:validation:XValidation:rule=`!has(self.matchLabels) || self.matchLabels.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))`,message="matchLabels keys must be label keys such as 'zone' or 'example.com/zone': alphanumeric, '-', '_' or '.', at most 63 characters after an optional DNS prefix"
type Selector struct {
	// matchLabels selects objects whose labels hold every key with exactly the given value.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	MatchLabels map[string]LabelValue `json:"matchLabels,omitempty"`

	// matchExpressions are label requirements that must all hold.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	MatchExpressions []SelectorRequirement `json:"matchExpressions,omitempty"`
}

// SelectorRequirement is one label requirement: a key, an operator and, for In and NotIn, values.
// +kubebuilder:validation:XValidation:rule=`self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)`,message="operators In and NotIn need at least one value; Exists and DoesNotExist take no values"
type SelectorRequirement struct {
	// key is the label key the requirement applies to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')`,messageExpression=`'"' + self + '" is not a valid label key: use alphanumeric, \'-\', \'_\' or \'.\', at most 63 characters after an optional DNS prefix'`
	Key string `json:"key"`

	// operator is In, NotIn, Exists or DoesNotExist.
	// +required
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator metav1.LabelSelectorOperator `json:"operator"`

	// values are the label values for In and NotIn; they must be empty for Exists and DoesNotExist.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=atomic
	Values []string `json:"values,omitempty"`
}

// LabelSelector returns the selector in the form of a Kubernetes label selector.
func (s *Selector) LabelSelector() *metav1.LabelSelector {
	ls := &metav1.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		ls.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			ls.MatchLabels[k] = string(v)
		}
	}
	for _, r := range s.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: r.Operator, Values: r.Values,
		})
	}
	return ls
}

// LabelValue is the value of a label: empty, or up to 63 alphanumerics, '-', '_' and '.', starting and ending
// alphanumeric.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule=`self.matches('^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$')`,messageExpression=`'"' + self + '" is not a valid label value: alphanumeric, \'-\', \'_\' or \'.\', at most 63 characters, starting and ending alphanumeric'`
type LabelValue string
