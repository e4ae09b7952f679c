package dataplane

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the config file's cluster section (see package cluster, which holds the
// same values, and the README's "Running a cluster").
const (
	// DefaultClusterPrefix is the etcd key prefix of a cluster.
	DefaultClusterPrefix = "/vxdp/v1"
	// DefaultLeaseTTL is how long a dead node stays listed on its peers.
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL and MaxLeaseTTL bound lease_ttl: etcd's own minimum with its default
	// timing, rounded up to its unit of a second; and an hour, past which a dead node
	// lingers for longer than anyone would wait.
	MinLeaseTTL = 2 * time.Second
	MaxLeaseTTL = time.Hour
	// DefaultAPI is the API socket's path in cluster mode: where the CNI plugin finds vxdp.
	DefaultAPI = "/run/vxdp/vxdp.sock"
)

// Cluster is the config file's cluster section: with it, vxdp registers this node in etcd
// and takes the remote VTEPs of its VNIs from the other members (package cluster). The
// dataplane itself does not use it; it is here so that one file, checked as a whole,
// configures a node.
type Cluster struct {
	// Etcd are the etcd v3 client URLs (http://; TLS is not configurable yet).
	Etcd []string
	// Node is this node's name in the cluster (default: the hostname).
	Node string
	// Prefix is the etcd key prefix, without a trailing slash.
	Prefix string
	// LeaseTTL is how long a node that stops keeping its lease alive stays listed.
	LeaseTTL time.Duration
}

type fileCluster struct {
	Etcd     []string `yaml:"etcd"`
	Node     string   `yaml:"node"`
	Prefix   *string  `yaml:"prefix"`
	LeaseTTL string   `yaml:"lease_ttl"`
}

// validate checks the cluster section and fills in its defaults.
func (fc *fileCluster) validate() (*Cluster, error) {
	c := &Cluster{Node: fc.Node, Prefix: DefaultClusterPrefix, LeaseTTL: DefaultLeaseTTL}
	if len(fc.Etcd) == 0 {
		return nil, fieldError("cluster.etcd", "is required: etcd's client URLs, e.g. [http://10.0.0.1:2379]")
	}
	for i, s := range fc.Etcd {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fieldError(fmt.Sprintf("cluster.etcd[%d]", i), "%q is not an etcd client URL (http://HOST:PORT; TLS is not supported yet)", s)
		}
		c.Etcd = append(c.Etcd, s)
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fieldError("cluster.node", "is not set and the hostname is unknown: %v", err)
		}
		c.Node = h
		if !validNodeName(c.Node) {
			return nil, fieldError("cluster.node", "is not set and the hostname %q is not a node name: set one (1-63 letters, digits, '.', '_', '-')", h)
		}
	} else if !validNodeName(c.Node) {
		return nil, fieldError("cluster.node", "%q is not a node name (1-63 letters, digits, '.', '_', '-')", c.Node)
	}
	if fc.Prefix != nil {
		p := *fc.Prefix
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || len(p) > 256 {
			return nil, fieldError("cluster.prefix", "%q is not a key prefix (/ then names, no trailing /, e.g. /vxdp/v1)", p)
		}
		c.Prefix = p
	}
	if fc.LeaseTTL != "" {
		d, err := time.ParseDuration(fc.LeaseTTL)
		if err != nil || d%time.Second != 0 || d < MinLeaseTTL || d > MaxLeaseTTL {
			return nil, fieldError("cluster.lease_ttl", "%q is not a whole number of seconds from %v to %v", fc.LeaseTTL, MinLeaseTTL, MaxLeaseTTL)
		}
		c.LeaseTTL = d
	}
	return c, nil
}

// validNodeName is package cluster's rule for a node's name: one element of an etcd key.
func validNodeName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
