package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/halfbackmq/halfback/telemetry"
)

// Default telemetry values. Each process names itself when
// telemetry.serviceName is empty: [ServiceBroker], [ServiceWorker], ...
const (
	DefaultTelemetryExporter    = telemetry.ExporterNone
	DefaultTelemetryProtocol    = telemetry.ProtocolGRPC
	DefaultTelemetrySampleRatio = 1.0

	ServiceBroker  = "halfback-broker"
	ServiceWorker  = "halfback-worker"
	ServiceStarter = "halfback-starter"
	ServicePayer   = "halfback-payer"
	ServiceCoupon  = "halfback-coupon"
	ServiceMirror  = "halfback-mirror"
)

// TelemetryConfig is the "telemetry" section: where traces and metrics go.
// [Config.TelemetryOptions] turns it into telemetry's Options.
type TelemetryConfig struct {
	// Exporter (telemetry.exporter) is otlp, stdout, file or none ("" is
	// none).
	Exporter string `mapstructure:"exporter"`
	// Endpoint (telemetry.endpoint) is the OTLP collector, host:port or
	// an http(s) URL (with a path only under protocol http); empty means
	// the exporter's default.
	Endpoint string `mapstructure:"endpoint"`
	// Protocol (telemetry.protocol) is the OTLP protocol, grpc or http
	// ("" is grpc).
	Protocol string `mapstructure:"protocol"`
	// File (telemetry.file) is where exporter file appends OTLP JSON lines.
	File string `mapstructure:"file"`
	// ServiceName (telemetry.serviceName) is the service.name resource
	// attribute; empty means the process's own (halfback-broker, ...).
	ServiceName string `mapstructure:"serviceName"`
	// ResourceAttributes (telemetry.resourceAttributes) are more resource
	// attributes, "key=value,key=value" as OTEL_RESOURCE_ATTRIBUTES.
	ResourceAttributes string `mapstructure:"resourceAttributes"`
	// SampleRatio (telemetry.sampleRatio) is the fraction of new traces
	// sampled, 0 to 1; 0 means 1.
	SampleRatio float64 `mapstructure:"sampleRatio"`
	// MetricsAddr (telemetry.metricsAddr) is the host:port of the
	// Prometheus endpoint (/metrics); empty means no metrics.
	MetricsAddr string `mapstructure:"metricsAddr"`
}

// TelemetryOptions returns telemetry's Options for the process named
// service (used when telemetry.serviceName is empty).
func (c *Config) TelemetryOptions(service string) telemetry.Options {
	t := c.Telemetry
	name := strings.TrimSpace(t.ServiceName)
	if name == "" {
		name = service
	}
	attrs, _ := parseAttributes(t.ResourceAttributes)
	return telemetry.Options{
		Exporter:           strings.ToLower(strings.TrimSpace(t.Exporter)),
		OTLPEndpoint:       strings.TrimSpace(t.Endpoint),
		OTLPProtocol:       strings.ToLower(strings.TrimSpace(t.Protocol)),
		File:               t.File,
		ServiceName:        name,
		ResourceAttributes: attrs,
		SampleRatio:        t.SampleRatio,
		MetricsAddr:        strings.TrimSpace(t.MetricsAddr),
	}
}

// parseAttributes reads "key=value,key=value"; nil for "".
func parseAttributes(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("want key=value, got %q", strings.TrimSpace(pair))
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// validateTelemetry checks the telemetry section.
func (c *Config) validateTelemetry() error {
	t := c.Telemetry
	exp := strings.ToLower(strings.TrimSpace(t.Exporter))
	switch exp {
	case "", telemetry.ExporterNone, telemetry.ExporterOTLP, telemetry.ExporterStdout, telemetry.ExporterFile:
	default:
		return invalid("telemetry.exporter", fmt.Sprintf("unknown exporter %q (want otlp, stdout, file or none)", t.Exporter))
	}
	if p := strings.ToLower(strings.TrimSpace(t.Protocol)); p != "" && p != telemetry.ProtocolGRPC && p != telemetry.ProtocolHTTP {
		return invalid("telemetry.protocol", fmt.Sprintf("unknown protocol %q (want grpc or http)", t.Protocol))
	}
	if ep := strings.TrimSpace(t.Endpoint); strings.Contains(ep, "://") {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("telemetry.endpoint", fmt.Sprintf("want host:port or an http:// or https:// URL, got %q", t.Endpoint))
		}
		if p := telemetry.EndpointProblem(ep, t.Protocol); p != "" {
			return invalid("telemetry.endpoint", p)
		}
	} else if ep != "" {
		if err := hostPort("telemetry.endpoint", ep, true); err != nil {
			return err
		}
	}
	if exp == telemetry.ExporterFile && strings.TrimSpace(t.File) == "" {
		return invalid("telemetry.file", "must name a file when telemetry.exporter is file")
	}
	if strings.ContainsAny(t.ServiceName, "\t\r\n") {
		return invalid("telemetry.serviceName", fmt.Sprintf("must be one line (got %q)", t.ServiceName))
	}
	if _, err := parseAttributes(t.ResourceAttributes); err != nil {
		return invalid("telemetry.resourceAttributes", err.Error())
	}
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) {
		return invalid("telemetry.sampleRatio", fmt.Sprintf("must be from 0 to 1 (got %v; 0 means 1, telemetry.exporter: none turns tracing off)", t.SampleRatio))
	}
	if a := strings.TrimSpace(t.MetricsAddr); a != "" {
		return hostPort("telemetry.metricsAddr", a, false)
	}
	return nil
}
