// pulumi-resource-command is a stand-in for the real pulumi-command v1.2.1
// plugin, which cannot be built here: its Go module (and pulumi-go-provider,
// which it is built on) is not served by the module proxy. It implements only
// command:remote:Command, reproducing pulumi-command v1.2.1's
//   - provider/pkg/provider/remote/commandController.go (Create/Update/Delete),
//   - provider/pkg/provider/remote/commandOutputs.go (running a command over
//     SSH: environment, PULUMI_COMMAND_STDOUT/STDERR, stdin, logging, errors),
//   - provider/pkg/provider/remote/connection.go and proxyConnection.go (SSH
//     auth, host key, dial retries, proxy),
//   - provider/pkg/provider/remote/command.go, baseOutputs.go, logging.go,
//     provider/pkg/provider/common/inputs.go and
//     provider/cmd/pulumi-resource-command/schema.json (inputs, outputs,
//     defaults, secrets, replaceOnChanges),
//
// together with what pulumi-go-provider v1.3.0's infer/resource.go adds
// around them: Check applies the schema defaults and marks secret fields,
// Diff compares old and new inputs, Read returns the state unchanged, and
// during preview outputs that do not mirror an input are unknown.
//
// Build: go build -ldflags "-X main.version=1.2.1" -o pulumi-resource-command ./providers/command
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/pkg/v3/resource/provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"

	"backup321/engine/providers/internal/stub"
)

// version is set at link time; the engine matches it with the version the
// @pulumi/command npm package asks for.
var version = "0.0.0-dev"

const commandType = "command:remote:Command"

func main() {
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &commandProvider{Base: stub.Base{Name: "command", Version: version}, host: host}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type commandProvider struct {
	stub.Base
	host *provider.HostClient
}

// kind is the expected shape of an input, for Check's type validation.
type kind int

const (
	kString kind = iota
	kNumber
	kBool
	kObject
	kArray
)

// commandInputs are the input properties of command:remote:Command (schema.json).
var commandInputs = map[string]kind{
	"connection": kObject, "create": kString, "update": kString, "delete": kString,
	"triggers": kArray, "stdin": kString, "logging": kString, "environment": kObject,
	"addPreviousOutputInEnv": kBool,
}

// connectionFields are command:remote:Connection's; the proxy has the same
// minus "proxy".
var connectionFields = map[string]kind{
	"host": kString, "port": kNumber, "user": kString, "password": kString,
	"privateKey": kString, "privateKeyPassword": kString, "agentSocketPath": kString,
	"dialErrorLimit": kNumber, "perDialTimeout": kNumber, "hostKey": kString, "proxy": kObject,
}

// Defaults set with a.SetDefault in connection.go / proxyConnection.go. The
// resource's own inputs (logging, addPreviousOutputInEnv) have no schema
// default: their defaults are applied when the command runs.
var connectionDefaults = resource.PropertyMap{
	"user": resource.NewProperty("root"), "port": resource.NewProperty(22.0),
	"dialErrorLimit": resource.NewProperty(10.0), "perDialTimeout": resource.NewProperty(15.0),
}

// Fields tagged provider:"secret" in connection.go.
var secretConnectionFields = []resource.PropertyKey{"password", "privateKey", "privateKeyPassword"}

// checkInputs is infer's default Check: decode the inputs against the input
// type (unknown fields, missing required fields and wrong types are
// failures), apply the schema defaults, and mark the secret fields secret.
// Unknown values are accepted as they are.
func checkInputs(news resource.PropertyMap) (resource.PropertyMap, []*pulumirpc.CheckFailure) {
	var failures []*pulumirpc.CheckFailure
	fail := func(prop, reason string) {
		failures = append(failures, &pulumirpc.CheckFailure{Property: prop, Reason: reason})
	}
	out := news.Copy()
	for _, k := range news.StableKeys() {
		want, ok := commandInputs[string(k)]
		if !ok {
			fail(string(k), fmt.Sprintf("unrecognized field %q", k))
			continue
		}
		checkKind(string(k), news[k], want, fail)
	}
	conn, ok := news["connection"]
	if !ok {
		fail("connection", "missing required field 'connection'")
		return out, failures
	}
	out["connection"] = resource.MakeSecret(checkConnection("connection", conn, true, fail))
	return out, failures
}

// checkConnection validates a connection (or its proxy) object and fills in
// its defaults. It returns the value without its secret wrapper; an unknown
// connection is returned as it is.
func checkConnection(path string, v resource.PropertyValue, allowProxy bool, fail func(string, string)) resource.PropertyValue {
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsObject() {
		return v // unknown, or already reported as the wrong type
	}
	obj := v.ObjectValue().Copy()
	for _, k := range obj.StableKeys() {
		want, ok := connectionFields[string(k)]
		if !ok || (k == "proxy" && !allowProxy) {
			fail(path+"."+string(k), fmt.Sprintf("unrecognized field %q", k))
			continue
		}
		checkKind(path+"."+string(k), obj[k], want, fail)
	}
	if _, ok := obj["host"]; !ok {
		fail(path+".host", "missing required field 'host'")
	}
	for k, d := range connectionDefaults {
		if _, ok := obj[k]; !ok {
			obj[k] = d
		}
	}
	for _, k := range secretConnectionFields {
		if e, ok := obj[k]; ok && !e.IsSecret() {
			obj[k] = resource.MakeSecret(e)
		}
	}
	if p, ok := obj["proxy"]; ok && allowProxy {
		obj["proxy"] = checkConnection(path+".proxy", p, false, fail)
		if p.IsSecret() {
			obj["proxy"] = resource.MakeSecret(obj["proxy"])
		}
	}
	return resource.NewProperty(obj)
}

func checkKind(path string, v resource.PropertyValue, want kind, fail func(string, string)) {
	if v = stub.Plain(v); v.IsComputed() {
		return
	}
	ok := map[kind]bool{
		kString: v.IsString(), kNumber: v.IsNumber(), kBool: v.IsBool(),
		kObject: v.IsObject(), kArray: v.IsArray(),
	}[want]
	if !ok {
		fail(path, fmt.Sprintf("%s has the wrong type %s", path, v.TypeString()))
	}
}

// diffInputs is infer's default Diff for a resource with an Update method:
// old inputs against new inputs, one detailed-diff entry per changed property
// path; a change whose path is exactly a replaceOnChanges input ("triggers")
// is a replace. (A change inside triggers, e.g. "triggers[0]", is reported as
// an update, as the real one does; the @pulumi/command SDK passes the
// resource option replaceOnChanges: ["triggers[*]"], so the engine replaces.)
//
// Like infer, both maps go through the SDK's property.Map model first. That
// turns a secret unknown into an unknown output value, which
// resource.PropertyMap.Diff counts as unchanged: a secret input that is
// unknown during a preview shows no change there, as with the real provider.
func diffInputs(oldInputs, news resource.PropertyMap) *pulumirpc.DiffResponse {
	news = news.Copy()
	for k := range news {
		// infer drops the engine's "version" and internal "__" properties.
		if k == "version" || strings.HasPrefix(string(k), "__") {
			delete(news, k)
		}
	}
	olds := resource.ToResourcePropertyMap(resource.FromResourcePropertyMap(oldInputs))
	news = resource.ToResourcePropertyMap(resource.FromResourcePropertyMap(news))
	detailed := plugin.NewDetailedDiffFromObjectDiff(olds.Diff(news), false)
	for path, d := range detailed {
		if path == "triggers" {
			d.Kind = d.Kind.AsReplace()
			detailed[path] = d
		}
	}
	return stub.DiffResponse(detailed)
}

// ignoreChanges keeps the old value of every ignored top-level property, as
// infer does before diffing or updating.
func ignoreChanges(news, state resource.PropertyMap, ignored []string) resource.PropertyMap {
	news = news.Copy()
	for _, k := range ignored {
		if v, ok := state[resource.PropertyKey(k)]; ok {
			news[resource.PropertyKey(k)] = v
		}
	}
	return news
}

// outputs are the inputs plus stdout and stderr.
func outputs(inputs resource.PropertyMap, stdout, stderr resource.PropertyValue) resource.PropertyMap {
	out := inputs.Copy()
	out["stdout"], out["stderr"] = stdout, stderr
	return out
}

// previewUpdateUnknown says whether stdout/stderr are unknown in an update
// preview: infer marks outputs that do not mirror an input unknown when an
// input is unknown or differs from its value in the old state.
func previewUpdateUnknown(olds, news resource.PropertyMap) bool {
	for k := range commandInputs {
		n, ok := news[resource.PropertyKey(k)]
		if ok && (n.IsComputed() || (n.IsSecret() && n.SecretValue().Element.IsComputed())) {
			return true
		}
		if o, had := olds[resource.PropertyKey(k)]; had && !o.DeepEquals(n) {
			return true
		}
	}
	return false
}

func stringProp(m resource.PropertyMap, k resource.PropertyKey) (string, bool) {
	v := stub.Plain(m[k])
	if !v.IsString() {
		return "", false
	}
	return v.StringValue(), true
}

func (p *commandProvider) checkType(t string) error {
	if t != commandType {
		return fmt.Errorf("unknown resource type %q: this stand-in provides only %s", t, commandType)
	}
	return nil
}

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := p.checkType(resource.URN(req.GetUrn()).Type().String()); err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	checked, failures := checkInputs(news)
	inputs, err := stub.Marshal(checked)
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: failures}, err
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	state, err := stub.Unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	news = ignoreChanges(news, state, req.GetIgnoreChanges())
	var oldInputs resource.PropertyMap
	if req.GetOldInputs() != nil {
		if oldInputs, err = stub.Unmarshal(req.GetOldInputs()); err != nil {
			return nil, err
		}
	} else {
		// Old engines do not send old inputs: take the input properties of
		// the state, as infer does.
		oldInputs = resource.PropertyMap{}
		for k := range commandInputs {
			if v, ok := state[resource.PropertyKey(k)]; ok {
				oldInputs[resource.PropertyKey(k)] = v
			}
		}
	}
	return diffInputs(oldInputs, news), nil
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	urn := resource.URN(req.GetUrn())
	inputs, err := stub.Unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	id, err := resource.NewUniqueHex(urn.Name(), 8, 0)
	if err != nil {
		return nil, err
	}
	empty := resource.NewProperty("")
	if req.GetPreview() {
		unknown := resource.MakeComputed(empty)
		props, err := stub.Marshal(outputs(inputs, unknown, unknown))
		return &pulumirpc.CreateResponse{Id: id, Properties: props}, err
	}
	stdout, stderr := empty, empty
	if cmd, ok := stringProp(inputs, "create"); ok {
		out, errOut, err := p.run(ctx, urn, inputs, resource.PropertyMap{}, cmd)
		if err != nil {
			// infer returns a plain error here: the engine records no state.
			return nil, err
		}
		stdout, stderr = resource.NewProperty(out), resource.NewProperty(errOut)
	}
	props, err := stub.Marshal(outputs(inputs, stdout, stderr))
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, err
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	urn := resource.URN(req.GetUrn())
	olds, err := stub.Unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	news = ignoreChanges(news, olds, req.GetIgnoreChanges())
	// The previous run's output is kept unless this update runs a command.
	stdout, stderr := olds["stdout"], olds["stderr"]
	if req.GetPreview() {
		if previewUpdateUnknown(olds, news) {
			stdout, stderr = resource.MakeComputed(resource.NewProperty("")), resource.MakeComputed(resource.NewProperty(""))
		}
		props, err := stub.Marshal(outputs(news, stdout, stderr))
		return &pulumirpc.UpdateResponse{Properties: props}, err
	}
	cmd, ok := stringProp(news, "update")
	if !ok {
		cmd, ok = stringProp(news, "create")
	}
	if ok {
		out, errOut, err := p.run(ctx, urn, news, olds, cmd)
		if err != nil {
			return nil, err
		}
		stdout, stderr = resource.NewProperty(out), resource.NewProperty(errOut)
	}
	props, err := stub.Marshal(outputs(news, stdout, stderr))
	return &pulumirpc.UpdateResponse{Properties: props}, err
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	state, err := stub.Unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	if cmd, ok := stringProp(state, "delete"); ok {
		if _, _, err := p.run(ctx, resource.URN(req.GetUrn()), state, state, cmd); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read returns the state as it is: the real provider has no drift detection.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

// sortedEnv returns the environment input as sorted key/value pairs.
func sortedEnv(props resource.PropertyMap) [][2]string {
	env := stub.Plain(props["environment"])
	if !env.IsObject() {
		return nil
	}
	var out [][2]string
	for _, k := range env.ObjectValue().StableKeys() {
		if v := env.ObjectValue()[k]; v.IsString() {
			out = append(out, [2]string{string(k), v.StringValue()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
