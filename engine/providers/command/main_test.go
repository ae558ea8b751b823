package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"

	"backup321/engine/providers/internal/stub"
)

func str(s string) resource.PropertyValue { return resource.NewProperty(s) }

func conn(host string) resource.PropertyValue {
	return resource.NewProperty(resource.PropertyMap{"host": str(host)})
}

func TestCheckAppliesSchemaDefaultsAndSecrets(t *testing.T) {
	news := resource.PropertyMap{
		"connection": resource.NewProperty(resource.PropertyMap{
			"host": str("10.0.0.1"), "password": str("pw"), "port": resource.NewProperty(2222.0),
		}),
		"create": str("true"),
	}
	out, failures := checkInputs(news)
	if len(failures) != 0 {
		t.Fatalf("failures: %v", failures)
	}
	c := out["connection"]
	if !c.IsSecret() {
		t.Fatalf("connection is not secret: %v", c)
	}
	m := c.SecretValue().Element.ObjectValue()
	want := map[resource.PropertyKey]resource.PropertyValue{
		"user": str("root"), "port": resource.NewProperty(2222.0),
		"dialErrorLimit": resource.NewProperty(10.0), "perDialTimeout": resource.NewProperty(15.0),
	}
	for k, v := range want {
		if !m[k].DeepEquals(v) {
			t.Errorf("connection.%s = %v, want %v", k, m[k], v)
		}
	}
	if !m["password"].IsSecret() {
		t.Errorf("connection.password is not secret")
	}
	// logging and addPreviousOutputInEnv have no schema default: not filled in.
	for _, k := range []resource.PropertyKey{"logging", "addPreviousOutputInEnv"} {
		if _, ok := out[k]; ok {
			t.Errorf("%s was defaulted", k)
		}
	}
	if news["connection"].IsSecret() {
		t.Errorf("check modified its input")
	}
}

func TestCheckFailures(t *testing.T) {
	_, failures := checkInputs(resource.PropertyMap{"create": str("x")})
	if len(failures) != 1 || failures[0].Property != "connection" {
		t.Errorf("missing connection: %v", failures)
	}
	_, failures = checkInputs(resource.PropertyMap{
		"connection": resource.NewProperty(resource.PropertyMap{"user": str("u")}),
		"create":     resource.NewProperty(1.0),
		"bogus":      str("x"),
	})
	props := map[string]bool{}
	for _, f := range failures {
		props[f.Property] = true
	}
	for _, p := range []string{"connection.host", "create", "bogus"} {
		if !props[p] {
			t.Errorf("no failure for %s: %v", p, failures)
		}
	}
	// Unknown values are accepted as they are.
	out, failures := checkInputs(resource.PropertyMap{
		"connection": resource.MakeComputed(str("")),
		"create":     resource.MakeComputed(str("")),
	})
	if len(failures) != 0 || !out["create"].IsComputed() {
		t.Errorf("unknowns: %v %v", out, failures)
	}
}

func checked(t *testing.T, m resource.PropertyMap) resource.PropertyMap {
	t.Helper()
	out, failures := checkInputs(m)
	if len(failures) != 0 {
		t.Fatal(failures)
	}
	return out
}

func TestDiff(t *testing.T) {
	base := resource.PropertyMap{"connection": conn("h"), "create": str("a")}
	old := checked(t, base)
	with := func(k resource.PropertyKey, v resource.PropertyValue) resource.PropertyMap {
		m := base.Copy()
		m[k] = v
		return checked(t, m)
	}

	if d := diffInputs(old, checked(t, base)); d.Changes != pulumirpc.DiffResponse_DIFF_NONE || len(d.DetailedDiff) != 0 {
		t.Errorf("unchanged: %v", d)
	}

	d := diffInputs(old, with("create", str("b")))
	if d.Changes != pulumirpc.DiffResponse_DIFF_SOME || d.DetailedDiff["create"].GetKind() != pulumirpc.PropertyDiff_UPDATE ||
		len(d.Replaces) != 0 || strings.Join(d.Diffs, ",") != "create" {
		t.Errorf("create changed: %v", d)
	}

	// Unknown new values are changes.
	d = diffInputs(old, with("create", resource.MakeComputed(str(""))))
	if d.DetailedDiff["create"].GetKind() != pulumirpc.PropertyDiff_UPDATE {
		t.Errorf("unknown create: %v", d)
	}

	// connection is a secret: its change is one update of the whole value.
	d = diffInputs(old, with("connection", conn("other")))
	if d.DetailedDiff["connection"].GetKind() != pulumirpc.PropertyDiff_UPDATE || len(d.Replaces) != 0 {
		t.Errorf("host changed: %v", d)
	}

	// infer's quirk: a secret unknown is not a change.
	d = diffInputs(with("stdin", resource.MakeSecret(str("s"))), with("stdin", resource.MakeSecret(resource.MakeComputed(str("")))))
	if d.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("secret unknown: %v", d)
	}

	// triggers is replaceOnChanges.
	trig := func(vs ...string) resource.PropertyValue {
		a := []resource.PropertyValue{}
		for _, v := range vs {
			a = append(a, str(v))
		}
		return resource.NewProperty(a)
	}
	d = diffInputs(old, with("triggers", trig("1")))
	if d.DetailedDiff["triggers"].GetKind() != pulumirpc.PropertyDiff_ADD_REPLACE || strings.Join(d.Replaces, ",") != "triggers" {
		t.Errorf("triggers added: %v", d)
	}
	d = diffInputs(with("triggers", trig("1")), with("triggers", trig("2")))
	// As infer reports it: the element path, as an update. The npm SDK's
	// replaceOnChanges: ["triggers[*]"] option makes the engine replace.
	if d.DetailedDiff["triggers[0]"].GetKind() != pulumirpc.PropertyDiff_UPDATE || strings.Join(d.Diffs, ",") != "triggers" {
		t.Errorf("trigger changed: %v", d)
	}
	d = diffInputs(with("triggers", trig("1")), base)
	if d.DetailedDiff["triggers"].GetKind() != pulumirpc.PropertyDiff_DELETE_REPLACE {
		t.Errorf("triggers removed: %v", d)
	}

	// Secrets compare by value.
	d = diffInputs(with("stdin", resource.MakeSecret(str("s"))), with("stdin", resource.MakeSecret(str("s"))))
	if d.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("same secret: %v", d)
	}
	d = diffInputs(with("stdin", resource.MakeSecret(str("s"))), with("stdin", resource.MakeSecret(str("t"))))
	if d.DetailedDiff["stdin"].GetKind() != pulumirpc.PropertyDiff_UPDATE {
		t.Errorf("secret changed: %v", d)
	}
}

// sshServer is a loopback SSH server that runs exec requests with sh and
// accepts the environment variables accept allows.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	mu      sync.Mutex
	ran     []string
}

func startSSH(t *testing.T, password string, accept func(name string) bool) *sshServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	config := &ssh.ServerConfig{PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		if string(pw) != password {
			return nil, errors.New("wrong password")
		}
		return nil, nil
	}}
	config.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &sshServer{addr: l.Addr().String(), hostKey: signer.PublicKey()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, config, accept)
		}
	}()
	return s
}

func (s *sshServer) serve(c net.Conn, config *ssh.ServerConfig, accept func(string) bool) {
	_, chans, reqs, err := ssh.NewServerConn(c, config)
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			env := os.Environ()
			for r := range creqs {
				switch r.Type {
				case "env":
					var kv struct{ Name, Value string }
					ok := ssh.Unmarshal(r.Payload, &kv) == nil && accept(kv.Name)
					if ok {
						env = append(env, kv.Name+"="+kv.Value)
					}
					_ = r.Reply(ok, nil)
				case "exec":
					var e struct{ Command string }
					_ = ssh.Unmarshal(r.Payload, &e)
					_ = r.Reply(true, nil)
					s.mu.Lock()
					s.ran = append(s.ran, e.Command)
					s.mu.Unlock()
					cmd := exec.Command("sh", "-c", e.Command)
					cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, ch, ch, ch.Stderr()
					status := 0
					if err := cmd.Run(); err != nil {
						status = 255
						if ee, ok := err.(*exec.ExitError); ok {
							status = ee.ExitCode()
						}
					}
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
					ch.Close()
				default:
					_ = r.Reply(false, nil)
				}
			}
		}()
	}
}

func (s *sshServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ran...)
}

func (s *sshServer) connection(extra resource.PropertyMap) resource.PropertyValue {
	host, port, _ := net.SplitHostPort(s.addr)
	var p float64
	for _, c := range port {
		p = p*10 + float64(c-'0')
	}
	m := resource.PropertyMap{
		"host": str(host), "port": resource.NewProperty(p), "user": str("u"), "password": str("pw"),
		"dialErrorLimit": resource.NewProperty(0.0),
	}
	for k, v := range extra {
		m[k] = v
	}
	return resource.NewProperty(m)
}

const testURN = "urn:pulumi:dev::proj::command:remote:Command::cmd"

func create(t *testing.T, p *commandProvider, inputs resource.PropertyMap, preview bool) (string, resource.PropertyMap, error) {
	t.Helper()
	props, err := stub.Marshal(checked(t, inputs))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: testURN, Properties: props, Preview: preview})
	if err != nil {
		return "", nil, err
	}
	out, err := stub.Unmarshal(resp.GetProperties())
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetId(), out, nil
}

func TestCommandOverSSH(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := startSSH(t, "pw", func(name string) bool { return name != "REFUSED" })
	p := &commandProvider{}

	// Preview runs nothing and leaves stdout/stderr unknown.
	_, out, err := create(t, p, resource.PropertyMap{"connection": srv.connection(nil), "create": str("echo x")}, true)
	if err != nil || !out["stdout"].IsComputed() || len(srv.commands()) != 0 {
		t.Fatalf("preview: %v %v ran %v", out, err, srv.commands())
	}

	inputs := resource.PropertyMap{
		"connection":  srv.connection(nil),
		"create":      str(`echo "hello $GREETING"; echo oops >&2; cat`),
		"update":      str(`echo "prev=$PULUMI_COMMAND_STDOUT|$PULUMI_COMMAND_STDERR"`),
		"stdin":       resource.MakeSecret(str("from stdin\n")),
		"environment": resource.NewProperty(resource.PropertyMap{"GREETING": str("world")}),
		"logging":     str("none"),
	}
	id, out, err := create(t, p, inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "cmd") || len(id) != len("cmd")+8 {
		t.Errorf("id %q", id)
	}
	if got := out["stdout"].StringValue(); got != "hello world\nfrom stdin" {
		t.Errorf("stdout %q", got)
	}
	if got := out["stderr"].StringValue(); got != "oops" {
		t.Errorf("stderr %q", got)
	}
	if !out["stdin"].IsSecret() || !out["connection"].IsSecret() {
		t.Errorf("secrets lost: %v", out)
	}

	// Update runs `update` with the previous outputs in the environment.
	olds, _ := stub.Marshal(out)
	news := inputs.Copy()
	news["stdin"] = resource.MakeSecret(str("changed"))
	newsRPC, _ := stub.Marshal(checked(t, news))
	resp, err := p.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: testURN, Olds: olds, News: newsRPC})
	if err != nil {
		t.Fatal(err)
	}
	upd, _ := stub.Unmarshal(resp.GetProperties())
	if got := upd["stdout"].StringValue(); got != "prev=hello world\nfrom stdin|oops" {
		t.Errorf("update stdout %q", got)
	}

	// A failing command fails with its exit status and output.
	_, _, err = create(t, p, resource.PropertyMap{"connection": srv.connection(nil), "create": str("echo bad >&2; exit 3")}, false)
	if err == nil || !strings.Contains(err.Error(), "Process exited with status 3") || !strings.Contains(err.Error(), "bad") {
		t.Errorf("failing command: %v", err)
	}

	// A refused `environment` variable fails the run.
	_, _, err = create(t, p, resource.PropertyMap{
		"connection":  srv.connection(nil),
		"create":      str("true"),
		"environment": resource.NewProperty(resource.PropertyMap{"REFUSED": str("1")}),
	}, false)
	if err == nil || !strings.Contains(err.Error(), `could not set environment variable "REFUSED"`) {
		t.Errorf("refused env: %v", err)
	}

	// The host key is checked when given.
	right := string(ssh.MarshalAuthorizedKey(srv.hostKey))
	if _, _, err := create(t, p, resource.PropertyMap{
		"connection": srv.connection(resource.PropertyMap{"hostKey": str(right)}), "create": str("true"),
	}, false); err != nil {
		t.Errorf("right host key: %v", err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherKey)
	wrong := string(ssh.MarshalAuthorizedKey(otherSigner.PublicKey()))
	if _, _, err := create(t, p, resource.PropertyMap{
		"connection": srv.connection(resource.PropertyMap{"hostKey": str(wrong)}), "create": str("true"),
	}, false); err == nil || !strings.Contains(err.Error(), "after 0 failed attempts") {
		t.Errorf("wrong host key: %v", err)
	}

	// Delete runs the state's delete command.
	state, _ := stub.Marshal(checked(t, resource.PropertyMap{"connection": srv.connection(nil), "delete": str("echo deleted")}))
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{Urn: testURN, Properties: state}); err != nil {
		t.Fatal(err)
	}
	if ran := srv.commands(); ran[len(ran)-1] != "echo deleted" {
		t.Errorf("delete ran %q", ran)
	}
}
