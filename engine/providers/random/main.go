// pulumi-resource-random is a stand-in for the real pulumi-random v4.21.2
// plugin, which cannot be built here: its Go module (a bridged
// terraform-provider-random) is not served by the module proxy. It implements
// random:index/randomPassword:RandomPassword and
// random:index/randomBytes:RandomBytes as terraform-provider-random (the
// commit pulumi-random v4.21.x bridges) defines them in
//   - internal/provider/resource_password.go (schema V3: defaults, validators,
//     plan modifiers; result and bcrypt_hash; id "none"),
//   - internal/provider/resource_bytes.go (base64 and hex of crypto/rand bytes),
//   - internal/random/string.go (the character sets and min_* counts),
//   - internal/planmodifiers/{bool,map,string}/ (number/numeric kept in sync;
//     which changes of keepers and override_special do not force a replace),
//
// and as pulumi-random's provider/resources.go bridges them (RandomBytes' ID is
// its base64; property names camelCased; sensitive outputs are secrets).
// Every other input change forces a replacement. Read returns the state as it
// is and Delete does nothing, as upstream.
//
// Build: go build -ldflags "-X main.version=4.21.2" -o pulumi-resource-random ./providers/random
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"os"

	"github.com/pulumi/pulumi/pkg/v3/resource/provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/emptypb"

	"backup321/engine/providers/internal/stub"
)

// version is set at link time; the engine matches it with the version the
// @pulumi/random npm package asks for.
var version = "0.0.0-dev"

const (
	passwordType = "random:index/randomPassword:RandomPassword"
	bytesType    = "random:index/randomBytes:RandomBytes"
)

func main() {
	err := provider.Main("random", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &randomProvider{Base: stub.Base{Name: "random", Version: version}}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type randomProvider struct{ stub.Base }

// Input properties per type (the @pulumi/random SDK's names).
var inputKeys = map[string][]resource.PropertyKey{
	passwordType: {"keepers", "length", "lower", "minLower", "minNumeric", "minSpecial", "minUpper",
		"number", "numeric", "overrideSpecial", "special", "upper"},
	bytesType: {"keepers", "length"},
}

func typeOf(urn string) (string, error) {
	t := resource.URN(urn).Type().String()
	if _, ok := inputKeys[t]; !ok {
		return "", fmt.Errorf("unknown resource type %q: this stand-in provides only %s and %s",
			t, passwordType, bytesType)
	}
	return t, nil
}

// known returns v without secret wrappers, and whether it is set and known.
func known(m resource.PropertyMap, k resource.PropertyKey) (resource.PropertyValue, bool) {
	v := stub.Plain(m[k])
	return v, v.HasValue() && !v.ContainsUnknowns()
}

// check runs the schema's validators: length is required and at least 1 (and,
// for a password, at least the sum of the min_* counts); booleans, numbers
// and strings have their types; numeric (or number) false needs one of
// special/upper/lower not false; number and numeric cannot disagree.
func check(t string, news resource.PropertyMap) []*pulumirpc.CheckFailure {
	var failures []*pulumirpc.CheckFailure
	fail := func(prop, format string, args ...any) {
		failures = append(failures, &pulumirpc.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)})
	}
	integer := func(k resource.PropertyKey) (int64, bool) {
		v, ok := known(news, k)
		if !ok {
			return 0, false
		}
		if !v.IsNumber() || v.NumberValue() != math.Trunc(v.NumberValue()) {
			fail(string(k), "%s must be an integer", k)
			return 0, false
		}
		return int64(v.NumberValue()), true
	}
	if !stub.Plain(news["length"]).HasValue() { // unknown counts as set
		fail("length", "Missing required property 'length'")
	}
	length, lengthKnown := integer("length")
	if lengthKnown && length < 1 {
		fail("length", "Attribute length value must be at least 1, got: %d", length)
	}
	if v, ok := known(news, "keepers"); ok && !v.IsObject() {
		fail("keepers", "keepers must be a map")
	}
	if t != passwordType {
		return failures
	}
	sum, sumKnown := int64(0), true
	for _, k := range []resource.PropertyKey{"minUpper", "minLower", "minNumeric", "minSpecial"} {
		if stub.Plain(news[k]).ContainsUnknowns() {
			sumKnown = false
		}
		n, _ := integer(k)
		sum += n
	}
	if lengthKnown && sumKnown && length < sum {
		fail("length", "Attribute length value must be at least sum of min_upper + min_lower + min_numeric + min_special (%d), got: %d", sum, length)
	}
	boolean := func(k resource.PropertyKey) (value, set bool) {
		v, ok := known(news, k)
		if ok && !v.IsBool() {
			fail(string(k), "%s must be a boolean", k)
			return false, false
		}
		return ok && v.BoolValue(), ok
	}
	number, numberSet := boolean("number")
	numeric, numericSet := boolean("numeric")
	if numberSet && numericSet && number != numeric {
		fail("numeric", "Number and numeric are both configured with different values")
	}
	// AtLeastOneOfTrue: only when special, upper and lower are all set to false.
	allFalse := true
	for _, k := range []resource.PropertyKey{"special", "upper", "lower"} {
		if v, set := boolean(k); !set || v {
			allFalse = false
		}
	}
	for _, c := range []struct {
		k        string
		v, isSet bool
	}{{"number", number, numberSet}, {"numeric", numeric, numericSet}} {
		if c.isSet && !c.v && allFalse {
			fail(c.k, "At least one attribute out of [special,upper,lower,%s] must be specified as true", c.k)
		}
	}
	if v, ok := known(news, "overrideSpecial"); ok && !v.IsString() {
		fail("overrideSpecial", "overrideSpecial must be a string")
	}
	return failures
}

// plan is what Terraform plans from the inputs: the schema defaults filled in,
// and number/numeric set from whichever is given (true when neither is).
func plan(t string, news resource.PropertyMap) resource.PropertyMap {
	out := news.Copy()
	if t != passwordType {
		return out
	}
	for k, d := range map[resource.PropertyKey]resource.PropertyValue{
		"special": resource.NewProperty(true), "upper": resource.NewProperty(true), "lower": resource.NewProperty(true),
		"minSpecial": resource.NewProperty(0.0), "minUpper": resource.NewProperty(0.0),
		"minLower": resource.NewProperty(0.0), "minNumeric": resource.NewProperty(0.0),
	} {
		if !out[k].HasValue() { // unknown counts as set
			out[k] = d
		}
	}
	number, numberSet := out["number"], out["number"].HasValue()
	numeric, numericSet := out["numeric"], out["numeric"].HasValue()
	switch {
	case !numberSet && !numericSet:
		out["number"], out["numeric"] = resource.NewProperty(true), resource.NewProperty(true)
	case !numberSet:
		out["number"] = numeric
	case !numericSet:
		out["numeric"] = number
	}
	return out
}

// requiresReplace says whether a change of k from o to n (both without
// secret wrappers; absent or null is a zero PropertyValue) forces a new
// resource. Everything does, except what two plan modifiers let through.
// (HasValue is true of unknowns: an unknown is set, to a value not yet known.)
func requiresReplace(t string, k resource.PropertyKey, o, n resource.PropertyValue) bool {
	switch {
	case t == passwordType && k == "keepers":
		return keepersReplace(o, n)
	case t == passwordType && k == "overrideSpecial":
		// RequiresReplaceUnlessEmptyStringToNull; unknown does not replace.
		if n.ContainsUnknowns() {
			return false
		}
		return n.HasValue() || !o.HasValue() || !(o.IsString() && o.StringValue() == "")
	}
	return true
}

// keepersReplace is RequiresReplaceIfValuesNotNull: adding keys whose value
// is null does not replace; any other change does.
func keepersReplace(o, n resource.PropertyValue) bool {
	newMap := resource.PropertyMap{}
	if n.IsObject() {
		newMap = n.ObjectValue()
	}
	if !o.IsObject() {
		for _, v := range newMap {
			if v.HasValue() {
				return true
			}
		}
		return false
	}
	oldMap := o.ObjectValue()
	for k, v := range newMap {
		ov, had := oldMap[k]
		if (!had && !v.HasValue()) || (had && ov.DeepEquals(v)) {
			continue
		}
		return true
	}
	for k := range oldMap {
		if _, ok := newMap[k]; !ok {
			return true
		}
	}
	return false
}

// diff compares the planned inputs with the state, by value (Terraform does
// not see secretness), one entry per changed top-level input.
func diff(t string, state, news resource.PropertyMap) map[string]plugin.PropertyDiff {
	planned := plan(t, news)
	out := map[string]plugin.PropertyDiff{}
	for _, k := range inputKeys[t] {
		o, n := stub.Plain(state[k]), stub.Plain(planned[k])
		oSet, nSet := o.HasValue(), n.HasValue()
		if (!oSet && !nSet) || (oSet && o.DeepEquals(n)) {
			continue
		}
		kind := plugin.DiffUpdate
		if !oSet {
			kind = plugin.DiffAdd
		} else if !nSet {
			kind = plugin.DiffDelete
		}
		if requiresReplace(t, k, o, n) {
			kind = kind.AsReplace()
		}
		out[string(k)] = plugin.PropertyDiff{Kind: kind}
	}
	return out
}

func intProp(m resource.PropertyMap, k resource.PropertyKey) int64 {
	if v := stub.Plain(m[k]); v.IsNumber() {
		return int64(v.NumberValue())
	}
	return 0
}

func boolProp(m resource.PropertyMap, k resource.PropertyKey) bool {
	v := stub.Plain(m[k])
	return v.IsBool() && v.BoolValue()
}

const (
	numChars     = "0123456789"
	lowerChars   = "abcdefghijklmnopqrstuvwxyz"
	upperChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	specialChars = "!@#$%&*()-_=+[]{}<>:?"
)

// passwordParams is random.StringParams from a planned property map.
type passwordParams struct {
	length                                     int64
	upper, lower, numeric, special             bool
	minUpper, minLower, minNumeric, minSpecial int64
	overrideSpecial                            string
}

func paramsOf(planned resource.PropertyMap) passwordParams {
	override := ""
	if v := stub.Plain(planned["overrideSpecial"]); v.IsString() {
		override = v.StringValue()
	}
	return passwordParams{
		length: intProp(planned, "length"),
		upper:  boolProp(planned, "upper"), lower: boolProp(planned, "lower"),
		numeric: boolProp(planned, "numeric"), special: boolProp(planned, "special"),
		minUpper: intProp(planned, "minUpper"), minLower: intProp(planned, "minLower"),
		minNumeric: intProp(planned, "minNumeric"), minSpecial: intProp(planned, "minSpecial"),
		overrideSpecial: override,
	}
}

// generate is CreateString: min_* characters drawn from their own set (even
// when that set is turned off, as upstream), the rest from the union of the
// enabled sets, then shuffled.
func generate(p passwordParams) (string, error) {
	special := specialChars
	if p.overrideSpecial != "" {
		special = p.overrideSpecial
	}
	chars := ""
	for _, s := range []struct {
		on  bool
		set string
	}{{p.upper, upperChars}, {p.lower, lowerChars}, {p.numeric, numChars}, {p.special, special}} {
		if s.on {
			chars += s.set
		}
	}
	if chars == "" {
		return "", fmt.Errorf("the character set specified is empty")
	}
	// Keyed by set like upstream: an override_special equal to another set
	// shares (and overrides) that set's minimum.
	mins := map[string]int64{}
	mins[numChars], mins[lowerChars], mins[upperChars], mins[special] = p.minNumeric, p.minLower, p.minUpper, p.minSpecial
	var result []rune
	for set, n := range mins {
		r, err := pick(set, n)
		if err != nil {
			return "", err
		}
		result = append(result, r...)
	}
	rest, err := pick(chars, p.length-int64(len(result)))
	if err != nil {
		return "", err
	}
	result = append(result, rest...)
	for i := len(result) - 1; i > 0; i-- { // Fisher-Yates with crypto/rand
		j, err := randInt(i + 1)
		if err != nil {
			return "", err
		}
		result[i], result[j] = result[j], result[i]
	}
	return string(result), nil
}

func pick(set string, n int64) ([]rune, error) {
	runes := []rune(set)
	out := make([]rune, 0, max(n, 0))
	for ; n > 0; n-- {
		i, err := randInt(len(runes))
		if err != nil {
			return nil, err
		}
		out = append(out, runes[i])
	}
	return out, nil
}

func randInt(n int) (int, error) {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, err
	}
	return int(i.Int64()), nil
}

// bcryptHash hashes at most the first 72 bytes, the most bcrypt takes.
func bcryptHash(s string) (string, error) {
	b := []byte(s)
	if len(b) > 72 {
		b = b[:72]
	}
	h, err := bcrypt.GenerateFromPassword(b, bcrypt.DefaultCost)
	return string(h), err
}

// created returns the ID and outputs of a new resource: the planned inputs
// plus the generated values, which are secrets (sensitive upstream). In a
// preview the generated values are unknown.
func created(t string, planned resource.PropertyMap, preview bool) (string, resource.PropertyMap, error) {
	out := planned.Copy()
	unknown := resource.MakeComputed(resource.NewProperty(""))
	secret := func(s string) resource.PropertyValue { return resource.MakeSecret(resource.NewProperty(s)) }
	switch {
	case preview && t == passwordType:
		out["id"], out["result"], out["bcryptHash"] = unknown, unknown, unknown
		return "", out, nil
	case preview:
		out["base64"], out["hex"] = unknown, unknown
		return "", out, nil
	case t == passwordType:
		result, err := generate(paramsOf(planned))
		if err != nil {
			return "", nil, err
		}
		hash, err := bcryptHash(result)
		if err != nil {
			return "", nil, err
		}
		out["id"], out["result"], out["bcryptHash"] = resource.NewProperty("none"), secret(result), secret(hash)
		return "none", out, nil
	default:
		b := make([]byte, intProp(planned, "length"))
		if _, err := rand.Read(b); err != nil {
			return "", nil, err
		}
		b64 := base64.StdEncoding.EncodeToString(b)
		out["base64"], out["hex"] = secret(b64), secret(hex.EncodeToString(b))
		return b64, out, nil // pulumi-random's computeRandomBytesID
	}
}

func (p *randomProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	t, err := typeOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: check(t, news)}, nil
}

func (p *randomProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	t, err := typeOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	state, err := stub.Unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	for _, k := range req.GetIgnoreChanges() {
		if v, ok := state[resource.PropertyKey(k)]; ok {
			news[resource.PropertyKey(k)] = v
		}
	}
	return stub.DiffResponse(diff(t, state, news)), nil
}

func (p *randomProvider) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	t, err := typeOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	id, out, err := created(t, plan(t, news), req.GetPreview())
	if err != nil {
		return nil, err
	}
	props, err := stub.Marshal(out)
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, err
}

// Update happens only for the changes that do not replace (keepers gaining
// null values, override_special "" to null): the new inputs, the generated
// values kept.
func (p *randomProvider) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	t, err := typeOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	olds, err := stub.Unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := stub.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	out := plan(t, news)
	for _, k := range []resource.PropertyKey{"id", "result", "bcryptHash", "base64", "hex"} {
		if v, ok := olds[k]; ok {
			out[k] = v
		}
	}
	props, err := stub.Marshal(out)
	return &pulumirpc.UpdateResponse{Properties: props}, err
}

func (p *randomProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (p *randomProvider) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
