package main

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"golang.org/x/crypto/bcrypt"
)

func num(n float64) resource.PropertyValue { return resource.NewProperty(n) }
func yes(b bool) resource.PropertyValue    { return resource.NewProperty(b) }

func count(s, set string) int {
	n := 0
	for _, r := range s {
		if strings.ContainsRune(set, r) {
			n++
		}
	}
	return n
}

func TestGenerateRespectsLengthSetsAndMinimums(t *testing.T) {
	for i := 0; i < 200; i++ {
		p := paramsOf(plan(passwordType, resource.PropertyMap{"length": num(48), "special": yes(false)}))
		s, err := generate(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 48 || count(s, upperChars+lowerChars+numChars) != 48 {
			t.Fatalf("special:false gave %q", s)
		}

		p = paramsOf(plan(passwordType, resource.PropertyMap{
			"length": num(12), "minUpper": num(3), "minNumeric": num(4), "minSpecial": num(2), "lower": yes(false),
		}))
		s, _ = generate(p)
		if len(s) != 12 || count(s, upperChars) < 3 || count(s, numChars) < 4 || count(s, specialChars) < 2 || count(s, lowerChars) != 0 {
			t.Fatalf("minimums gave %q", s)
		}

		p = paramsOf(plan(passwordType, resource.PropertyMap{
			"length": num(20), "upper": yes(false), "lower": yes(false), "numeric": yes(false), "overrideSpecial": resource.NewProperty("_-"),
		}))
		s, _ = generate(p)
		if len(s) != 20 || count(s, "_-") != 20 {
			t.Fatalf("overrideSpecial gave %q", s)
		}
	}
	// The default set of special characters is upstream's.
	p := passwordParams{length: 500, special: true}
	s, _ := generate(p)
	if count(s, "!@#$%&*()-_=+[]{}<>:?") != 500 {
		t.Errorf("special set: %q", s)
	}
}

func TestCreate(t *testing.T) {
	id, out, err := created(passwordType, plan(passwordType, resource.PropertyMap{"length": num(16)}), false)
	if err != nil {
		t.Fatal(err)
	}
	if id != "none" || !out["result"].IsSecret() || !out["bcryptHash"].IsSecret() {
		t.Fatalf("password: %q %v", id, out)
	}
	result := out["result"].SecretValue().Element.StringValue()
	hash := out["bcryptHash"].SecretValue().Element.StringValue()
	if len(result) != 16 || bcrypt.CompareHashAndPassword([]byte(hash), []byte(result)) != nil {
		t.Errorf("result %q hash %q", result, hash)
	}
	for k, v := range map[resource.PropertyKey]resource.PropertyValue{
		"special": yes(true), "upper": yes(true), "lower": yes(true), "number": yes(true), "numeric": yes(true),
		"minUpper": num(0), "minLower": num(0), "minNumeric": num(0), "minSpecial": num(0),
	} {
		if !out[k].DeepEquals(v) {
			t.Errorf("%s = %v", k, out[k])
		}
	}

	id, out, _ = created(bytesType, plan(bytesType, resource.PropertyMap{"length": num(32)}), false)
	b64 := out["base64"].SecretValue().Element.StringValue()
	raw, _ := base64.StdEncoding.DecodeString(b64)
	hx, _ := hex.DecodeString(out["hex"].SecretValue().Element.StringValue())
	if id != b64 || len(raw) != 32 || string(hx) != string(raw) {
		t.Errorf("bytes: id %q out %v", id, out)
	}

	_, out, _ = created(passwordType, plan(passwordType, resource.PropertyMap{"length": num(16)}), true)
	if !out["result"].IsComputed() || !out["bcryptHash"].IsComputed() {
		t.Errorf("preview: %v", out)
	}
}

func TestDiff(t *testing.T) {
	_, state, _ := created(passwordType, plan(passwordType, resource.PropertyMap{"length": num(16), "special": yes(false)}), false)
	inputs := resource.PropertyMap{"length": num(16), "special": yes(false)}

	if d := diff(passwordType, state, inputs); len(d) != 0 {
		t.Errorf("unchanged: %v", d)
	}
	// Secretness alone is no change.
	if d := diff(passwordType, state, resource.PropertyMap{"length": resource.MakeSecret(num(16)), "special": yes(false)}); len(d) != 0 {
		t.Errorf("secret length: %v", d)
	}
	for k, v := range map[resource.PropertyKey]resource.PropertyValue{
		"length": num(17), "special": yes(true), "minUpper": num(1), "upper": yes(false),
		"numeric": yes(false), "overrideSpecial": resource.NewProperty("_"),
		"keepers": resource.NewProperty(resource.PropertyMap{"k": resource.NewProperty("v")}),
	} {
		news := inputs.Copy()
		news[k] = v
		d := diff(passwordType, state, news)
		if len(d) == 0 {
			t.Errorf("%s change: no diff", k)
		}
		for path, pd := range d {
			if !pd.Kind.IsReplace() {
				t.Errorf("%s change: %s is %v, not a replace", k, path, pd.Kind)
			}
		}
	}
	if d := diff(passwordType, state, resource.PropertyMap{"length": resource.MakeComputed(num(0)), "special": yes(false)}); d["length"].Kind != plugin.DiffUpdateReplace {
		t.Errorf("unknown length: %v", d)
	}

	// The two changes upstream's plan modifiers let through as updates.
	withEmpty := state.Copy()
	withEmpty["overrideSpecial"] = resource.NewProperty("")
	if d := diff(passwordType, withEmpty, inputs); d["overrideSpecial"].Kind != plugin.DiffDelete {
		t.Errorf(`overrideSpecial "" -> null: %v`, d)
	}
	news := inputs.Copy()
	news["keepers"] = resource.NewProperty(resource.PropertyMap{})
	if d := diff(passwordType, state, news); d["keepers"].Kind != plugin.DiffAdd {
		t.Errorf("keepers null -> {}: %v", d)
	}

	_, bytesState, _ := created(bytesType, plan(bytesType, resource.PropertyMap{"length": num(8)}), false)
	if d := diff(bytesType, bytesState, resource.PropertyMap{"length": num(8)}); len(d) != 0 {
		t.Errorf("bytes unchanged: %v", d)
	}
	if d := diff(bytesType, bytesState, resource.PropertyMap{"length": num(9)}); d["length"].Kind != plugin.DiffUpdateReplace {
		t.Errorf("bytes length: %v", d)
	}
	if d := diff(bytesType, bytesState, resource.PropertyMap{"length": num(8), "keepers": resource.NewProperty(resource.PropertyMap{})}); d["keepers"].Kind != plugin.DiffAddReplace {
		t.Errorf("bytes keepers: %v", d)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		typ    string
		inputs resource.PropertyMap
		fail   string
	}{
		{passwordType, resource.PropertyMap{"length": num(16)}, ""},
		{passwordType, resource.PropertyMap{"length": resource.MakeComputed(num(0))}, ""},
		{passwordType, resource.PropertyMap{}, "length"},
		{passwordType, resource.PropertyMap{"length": num(0)}, "length"},
		{passwordType, resource.PropertyMap{"length": num(2.5)}, "length"},
		{passwordType, resource.PropertyMap{"length": num(3), "minUpper": num(2), "minLower": num(2)}, "length"},
		{passwordType, resource.PropertyMap{"length": num(3), "number": yes(true), "numeric": yes(false)}, "numeric"},
		{passwordType, resource.PropertyMap{"length": num(3), "numeric": yes(false), "special": yes(false), "upper": yes(false), "lower": yes(false)}, "numeric"},
		{passwordType, resource.PropertyMap{"length": num(3), "numeric": yes(false), "special": yes(false), "upper": yes(false)}, ""},
		{bytesType, resource.PropertyMap{"length": num(0)}, "length"},
	}
	for _, c := range cases {
		failures := check(c.typ, c.inputs)
		switch {
		case c.fail == "" && len(failures) != 0:
			t.Errorf("%v: unexpected %v", c.inputs, failures)
		case c.fail != "" && (len(failures) == 0 || failures[0].Property != c.fail):
			t.Errorf("%v: want a failure on %s, got %v", c.inputs, c.fail, failures)
		}
	}
}
