package ports_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// The run API carries the run's repository configuration (runs.repository_config): null
// before prepare_repository read it, then the RepositoryConfigLoaded data, in the documented
// shape (raw validates every answer against api/openapi.yaml).
func TestRunsCarryTheRepositoryConfiguration(t *testing.T) {
	e := newEnv(t)
	ticket := e.Create(e.Alice, `{"title":"config","repository_url":"https://github.com/a/b.git"}`)
	started := e.Call(e.Alice, "POST", "/api/tickets/processing/start", `{"ticket_id":"`+ticket+`"}`)
	run, _ := started.Body["run_id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for e.Call(e.Alice, "GET", "/api/runs/"+run+"/events", "").Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("run not projected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	type runs struct {
		Runs []struct {
			RepositoryConfig *struct {
				Source string `json:"source"`
				SHA256 string `json:"sha256"`
				Config struct {
					CICommand     string   `json:"ci_command"`
					CICommandFrom string   `json:"ci_command_from"`
					Editable      []string `json:"editable"`
					MaxSteps      int      `json:"max_steps"`
					Notes         []string `json:"notes"`
				} `json:"config"`
			} `json:"repository_config"`
		} `json:"runs"`
	}
	var before runs
	status, _, body := raw(e, e.Alice, "/api/tickets/"+ticket+"/runs")
	if err := json.Unmarshal([]byte(body), &before); status != 200 || err != nil || len(before.Runs) != 1 || before.Runs[0].RepositoryConfig != nil {
		t.Errorf("before prepare_repository: %d %s", status, body)
	}
	if _, err := e.DB.Exec(context.Background(), `UPDATE runs SET repository_config = $2 WHERE id = $1`, run,
		`{"source":"file","sha256":"ab12","size_bytes":80,"config":{"ci_command":"sh ci.sh","ci_command_from":"repository","ci_command_overridable":false,
		"ci_timeout_ms":30000,"editable":["src/**"],"max_steps":6,"max_tokens":1000,"max_cost_usd":0.5,"max_duration_ms":60000,"notes":["refused"]}}`); err != nil {
		t.Fatal(err)
	}
	var after runs
	status, _, body = raw(e, e.Alice, "/api/tickets/"+ticket+"/runs")
	if err := json.Unmarshal([]byte(body), &after); status != 200 || err != nil || len(after.Runs) != 1 || after.Runs[0].RepositoryConfig == nil {
		t.Fatalf("after: %d %s", status, body)
	}
	rc := after.Runs[0].RepositoryConfig
	if rc.Source != "file" || rc.SHA256 != "ab12" || rc.Config.CICommand != "sh ci.sh" || rc.Config.CICommandFrom != "repository" ||
		len(rc.Config.Editable) != 1 || rc.Config.MaxSteps != 6 || len(rc.Config.Notes) != 1 {
		t.Errorf("repository_config %+v", rc)
	}
}
