// Package ipam allocates load-balancer addresses from pools of address ranges without enumerating them.
package ipam
