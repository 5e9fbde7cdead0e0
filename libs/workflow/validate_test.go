package workflow

import "testing"

func TestValidateRepositoryURL(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowFile bool
		ok        bool
	}{
		{"", false, true},
		{"https://github.com/user/repo.git", false, true},
		{"ssh://git@github.com/user/repo.git", false, true},
		{"git@github.com:user/repo.git", false, true},
		{"file:///tmp/repo.git", true, true},
		{"file:///tmp/repo.git", false, false},
		{"-uhttps://x", false, false},
		{"--upload-pack=touch /tmp/pwned", false, false},
		{"ext::sh -c touch% /tmp/pwned", false, false},
		{"https://user:token@github.com/x", false, false},
		{"http://github.com/x", false, false},
		{"https:///nohost", false, false},
		{"git@-oProxyCommand=x:repo", false, false},
	} {
		err := ValidateRepositoryURL(tc.url, tc.allowFile)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateRepositoryURL(%q, %v) = %v, want ok=%v", tc.url, tc.allowFile, err, tc.ok)
		}
	}
}

func TestValidateBranch(t *testing.T) {
	for b, ok := range map[string]bool{"main": true, "feature/x-1": true, "": false, "-x": false, "a..b": false, "a b": false, "x.lock": false, "a;rm": false} {
		if err := ValidateBranch(b); (err == nil) != ok {
			t.Errorf("ValidateBranch(%q) = %v, want ok=%v", b, err, ok)
		}
	}
}

func FuzzValidateRepositoryURL(f *testing.F) {
	f.Add("https://github.com/a/b")
	f.Add("git@h:p")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateRepositoryURL(s, true) == nil && len(s) > 0 && s[0] == '-' {
			t.Fatalf("accepted option-like url %q", s)
		}
	})
}
