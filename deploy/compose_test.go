// Package deploy holds the files for running tamperscope on users' own
// machines; its tests check them without starting them.
package deploy

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeKafka: compose.kafka.yml is a valid Compose file, as Docker
// Compose's own loader and schema read it (compose-go), and its broker is
// the one scripts/kafka.sh runs: Apache Kafka's image of the version
// scripts/kafka/pom.xml fetches, the same client port on loopback, and
// every setting of the script's server.properties, bar those a container
// sets its own way (listeners on every interface of the container, the
// quorum and the data on the container's own names and volume).
func TestComposeKafka(t *testing.T) {
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: "compose.kafka.yml"}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("tamperscope", true) })
	if err != nil {
		t.Fatalf("compose.kafka.yml does not load: %v", err)
	}
	svc, ok := project.Services["kafka"]
	if !ok {
		t.Fatal("compose.kafka.yml has no kafka service")
	}

	pom, err := os.ReadFile("../scripts/kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`).FindSubmatch(pom)
	if m == nil {
		t.Fatal("scripts/kafka/pom.xml names no kafka.version")
	}
	if want := "apache/kafka:" + string(m[1]); svc.Image != want {
		t.Errorf("image %s, want %s (the broker scripts/kafka.sh runs)", svc.Image, want)
	}

	props := scriptConfig(t)
	port := strings.TrimPrefix(props["advertised.listeners"], "PLAINTEXT://127.0.0.1:")
	published := false
	for _, p := range svc.Ports {
		if p.HostIP == "127.0.0.1" && p.Published == port && p.Target == 19092 {
			published = true
		}
	}
	if !published {
		t.Errorf("ports %+v: want 127.0.0.1:%s published from the container's 19092", svc.Ports, port)
	}

	dataDir := ""
	for _, v := range svc.Volumes {
		if v.Source == "kafka-data" {
			dataDir = v.Target
		}
	}
	// What the container sets its own way, and how.
	own := map[string]string{
		"listeners":                "PLAINTEXT://:19092,CONTROLLER://:19093",
		"controller.quorum.voters": "1@localhost:19093",
		"log.dirs":                 dataDir,
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		name, ok := strings.CutPrefix(k, "KAFKA_")
		if !ok || v == nil {
			t.Errorf("environment %s: not a KAFKA_ setting with a value", k)
			continue
		}
		env[strings.ToLower(strings.ReplaceAll(name, "_", "."))] = *v
	}
	for key, want := range props {
		if o, ok := own[key]; ok {
			want = o
		}
		if got, ok := env[key]; !ok {
			t.Errorf("%s=%s of scripts/kafka.sh is not set (KAFKA_%s)", key, want, envName(key))
		} else if got != want {
			t.Errorf("KAFKA_%s=%s, want %s", envName(key), got, want)
		}
	}
	for key := range env {
		if _, ok := props[key]; !ok {
			t.Errorf("KAFKA_%s sets %s, which scripts/kafka.sh does not", envName(key), key)
		}
	}
}

// scriptConfig returns the server.properties scripts/kafka.sh writes, for a
// cache of the test's own.
func scriptConfig(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("bash", "../scripts/kafka.sh", "config")
	cmd.Env = append(os.Environ(), "TAMPERSCOPE_KAFKA_CACHE="+t.TempDir(), "TAMPERSCOPE_KAFKA_PORT=", "TAMPERSCOPE_KAFKA_SECURE=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/kafka.sh config: %v", err)
	}
	props := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			props[k] = v
		}
	}
	if len(props) < 10 {
		t.Fatalf("scripts/kafka.sh config printed %d settings:\n%s", len(props), out)
	}
	return props
}

func envName(key string) string { return strings.ToUpper(strings.ReplaceAll(key, ".", "_")) }
