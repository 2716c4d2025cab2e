package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/telemetry"
)

func TestTelemetrySectionFromFileAndEnv(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "telemetry:\n  exporter: OTLP\n  endpoint: collector:4318\n  protocol: http\n"+
		"  resourceAttributes: deployment.environment.name=staging, service.version=1.2\n  sampleRatio: 0.25\n")
	t.Setenv("HALFBACK_TELEMETRY_METRICSADDR", "127.0.0.1:9464")
	t.Setenv("HALFBACK_TELEMETRY_SERVICENAME", "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.TelemetryOptions(ServiceBroker)
	want := telemetry.Options{Exporter: "otlp", OTLPEndpoint: "collector:4318", OTLPProtocol: "http",
		ServiceName: "halfback-broker", SampleRatio: 0.25, MetricsAddr: "127.0.0.1:9464",
		ResourceAttributes: map[string]string{"deployment.environment.name": "staging", "service.version": "1.2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TelemetryOptions:\n got  %+v\n want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("options from a valid config do not validate: %v", err)
	}
	t.Setenv("HALFBACK_TELEMETRY_SERVICENAME", "shop-broker")
	if cfg, err = Load(path); err != nil || cfg.TelemetryOptions(ServiceWorker).ServiceName != "shop-broker" {
		t.Errorf("telemetry.serviceName from the environment: %+v, %v", cfg, err)
	}
}

func TestTelemetryDefaultsExportNothing(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.TelemetryOptions(ServiceWorker)
	if o.Exporter != telemetry.ExporterNone || o.MetricsAddr != "" || o.ServiceName != ServiceWorker || o.SampleRatio != 1 {
		t.Errorf("default telemetry options %+v", o)
	}
}

func TestTelemetryBadValues(t *testing.T) {
	for _, tc := range []struct {
		body, key, msg string
	}{
		{"exporter: jaeger", "telemetry.exporter", `unknown exporter "jaeger"`},
		{"protocol: thrift", "telemetry.protocol", `unknown protocol "thrift"`},
		{"endpoint: collector", "telemetry.endpoint", "want host:port"},
		{"endpoint: ftp://collector:21", "telemetry.endpoint", "http:// or https:// URL"},
		{"endpoint: http://collector:4317/v1/traces", "telemetry.endpoint", "path \"/v1/traces\" needs protocol http"},
		{"endpoint: https://collector:4317/otlp\n  protocol: grpc", "telemetry.endpoint", "gRPC has no path"},
		{"exporter: file", "telemetry.file", "must name a file"},
		{"sampleRatio: -0.1", "telemetry.sampleRatio", "must be from 0 to 1"},
		{"sampleRatio: 1.5", "telemetry.sampleRatio", "must be from 0 to 1"},
		{"sampleRatio: lots", "telemetry.sampleRatio", "want a number from 0 to 1"},
		{"metricsAddr: 9464", "telemetry.metricsAddr", "want host:port"},
		{"resourceAttributes: team", "telemetry.resourceAttributes", "want key=value"},
		{"exporterr: otlp", "telemetry.exporterr", "unknown key"},
	} {
		clearEnv(t)
		_, err := Load(writeConfig(t, "telemetry:\n  "+tc.body+"\n"))
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want one naming %s with %q", tc.body, err, tc.key, tc.msg)
		}
	}
	clearEnv(t)
	t.Setenv("HALFBACK_TELEMETRY_EXPORTER", "zipkin")
	if _, err := Load(""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "telemetry.exporter") {
		t.Errorf("bad exporter from the environment: %v", err)
	}
}
