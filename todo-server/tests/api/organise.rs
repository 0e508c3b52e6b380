//! Tags, reminders and the list filters over HTTP: the JSON, every new parameter and its 422,
//! and the tag routes with their isolation.

use serde_json::{Value, json};

use crate::helpers::{apps, bearer, create, get, json, send, user};

/// The field names a 422 problem lists.
fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn titles(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tags_and_reminders_are_stored_replaced_and_cleared() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(
            &app,
            &u,
            &t,
            json!({"title": "a", "tags": [" Work ", "home", "WORK", "Ärger"],
                   "remind_at": "2030-01-31T08:00:00+01:00"}),
        )
        .await;
        assert_eq!(
            task["tags"],
            json!(["Work", "home", "Ärger"]),
            "{}",
            app.name
        );
        assert_eq!(task["remind_at"], "2030-01-31T07:00:00Z");
        let plain = create(&app, &u, &t, json!({"title": "b"})).await;
        assert_eq!(plain["tags"], json!([]));
        assert_eq!(plain["remind_at"], Value::Null);

        let path = format!("/api/{u}/tasks/{}", task["id"]);
        let (status, patched) = send(&app, "PATCH", &path, &t, json!({"tags": ["x"]})).await;
        assert_eq!(status, 200);
        assert_eq!(patched["tags"], json!(["x"]));
        assert_eq!(patched["remind_at"], "2030-01-31T07:00:00Z", "unchanged");
        let (_, cleared) = send(
            &app,
            "PATCH",
            &path,
            &t,
            json!({"tags": null, "remind_at": null}),
        )
        .await;
        assert_eq!(cleared["tags"], json!([]));
        assert_eq!(cleared["remind_at"], Value::Null);
        let (status, put) = send(
            &app,
            "PUT",
            &path,
            &t,
            json!({"title": "c", "tags": ["y", "Y"], "remind_at": "2031-02-03"}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(put["tags"], json!(["y"]));
        assert_eq!(put["remind_at"], "2031-02-03T00:00:00Z");
        let (_, read) = get(&app, &path, &t).await;
        assert_eq!(read, put);
    }
}

#[tokio::test]
async fn bad_tags_and_reminders_are_422_naming_the_field_and_change_nothing() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(&app, &u, &t, json!({"title": "a", "tags": ["keep"]})).await;
        let path = format!("/api/{u}/tasks/{}", task["id"]);
        let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        let bad = [
            (json!({"tags": "work"}), "tags"),
            (json!({"tags": [1]}), "tags"),
            (json!({"tags": [""]}), "tags"),
            (json!({"tags": ["  "]}), "tags"),
            (json!({"tags": ["x".repeat(51)]}), "tags"),
            (json!({"tags": ["a\u{7}b"]}), "tags"),
            (json!({"tags": too_many}), "tags"),
            (json!({"remind_at": "soon"}), "remind_at"),
            (json!({"remind_at": "10000-01-01T00:00:00Z"}), "remind_at"),
            (json!({"remind_at": 5}), "remind_at"),
        ];
        for (body, field) in bad {
            let (status, problem) = send(&app, "PATCH", &path, &t, body.clone()).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(fields(&problem), [field], "{body}");
            let mut create_body = body.clone();
            create_body["title"] = json!("new");
            let (status, problem) =
                send(&app, "POST", &format!("/api/{u}/tasks"), &t, create_body).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(fields(&problem), [field], "{body}");
        }
        let (_, read) = get(&app, &path, &t).await;
        assert_eq!(read, task, "{}", app.name);
        // Twenty different tags, and repeats beyond them that merge, are fine.
        let mut twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        twenty.push("T0".into());
        let (status, ok) = send(&app, "PATCH", &path, &t, json!({"tags": twenty})).await;
        assert_eq!(status, 200);
        assert_eq!(ok["tags"].as_array().unwrap().len(), 20);
    }
}

#[tokio::test]
async fn lists_filter_by_tags_priorities_due_dates_and_overdue_and_keep_them_across_pages() {
    for app in apps().await {
        let (u, t) = user();
        let new = |title: &str, tags: Value, priority: &str, due: Value| json!({"title": title, "tags": tags, "priority": priority, "due_date": due});
        for body in [
            new(
                "a",
                json!(["Work", "urgent"]),
                "high",
                json!("2020-01-01T00:00:00Z"),
            ),
            new("b", json!(["work"]), "low", json!("2030-06-15T12:00:00Z")),
            new("c", json!(["home"]), "medium", json!("2030-06-16")),
            new("d", json!(["WORK", "home"]), "high", Value::Null),
            new("e", json!([]), "low", json!("2019-05-05")),
        ] {
            create(&app, &u, &t, body).await;
        }
        let done = create(
            &app,
            &u,
            &t,
            new("f", json!(["work"]), "high", json!("2018-01-01")),
        )
        .await;
        let (status, _) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/{}/complete", done["id"]),
            &t,
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
        let list = |query: &str| format!("/api/{u}/tasks?sort=title&order=asc&{query}");
        let cases: [(&str, &[&str]); 12] = [
            ("tag=work", &["a", "b", "d", "f"]),
            ("tag=WORK&tag=Home", &["d"]),
            ("tag=work&tag=urgent", &["a"]),
            ("tag=nothing", &[]),
            ("priority=high", &["a", "d", "f"]),
            ("priority=low,medium", &["b", "c", "e"]),
            ("priority=low&priority=HIGH", &["a", "b", "d", "e", "f"]),
            ("due_after=2030-06-15T12:00:00Z", &["b", "c"]),
            ("due_before=2030-06-16", &["a", "b", "e", "f"]),
            (
                "due_after=2020-01-01&due_before=2030-06-16T00:00:00Z",
                &["a", "b"],
            ),
            ("overdue=true", &["a", "e"]),
            ("overdue=true&tag=work&status=pending&priority=high", &["a"]),
        ];
        for (query, want) in cases {
            let (status, body) = get(&app, &list(query), &t).await;
            assert_eq!(status, 200, "{query}");
            assert_eq!(titles(&body), want, "{query} on {}", app.name);
        }
        // Pages of one under a filter: the next link keeps it, and the walk is exact.
        let mut seen = Vec::new();
        let mut next = Some(list("tag=work&limit=1"));
        while let Some(path) = next.take() {
            let resp = app
                .client
                .get(&path)
                .header("authorization", bearer(&t))
                .send()
                .await;
            assert_eq!(resp.0.status(), 200);
            let link = crate::helpers::header(&resp, "link");
            seen.extend(titles(&json(resp).await));
            if let Some(link) = link {
                assert!(link.contains("tag=work"), "{link}");
                let target = link.trim_start_matches('<');
                next = Some(target[..target.find('>').unwrap()].to_owned());
            }
        }
        assert_eq!(seen, ["a", "b", "d", "f"], "{}", app.name);
    }
}

#[tokio::test]
async fn bad_list_parameters_and_task_ids_are_422_naming_them() {
    for app in apps().await {
        let (u, t) = user();
        let long = "x".repeat(51);
        let many: String = (0..21).map(|i| format!("tag=t{i}&")).collect();
        let cases = [
            ("tag=".to_owned(), "tag"),
            (format!("tag={long}"), "tag"),
            (many, "tag"),
            ("priority=urgent".to_owned(), "priority"),
            ("priority=low,,nope".to_owned(), "priority"),
            ("due_before=tomorrow".to_owned(), "due_before"),
            ("due_after=2030-13-01".to_owned(), "due_after"),
            ("overdue=maybe".to_owned(), "overdue"),
            ("status=archived".to_owned(), "status"),
            ("sort=colour".to_owned(), "sort"),
            ("order=up".to_owned(), "order"),
            ("limit=0".to_owned(), "limit"),
        ];
        for (query, field) in cases {
            let (status, problem) = get(&app, &format!("/api/{u}/tasks?{query}"), &t).await;
            assert_eq!(status, 422, "{query}");
            assert_eq!(fields(&problem), [field], "{query}");
        }
        for id in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
            let (status, problem) = get(&app, &format!("/api/{u}/tasks/{id}"), &t).await;
            assert_eq!(status, 422, "{id}");
            assert_eq!(fields(&problem), ["id"], "{id}");
        }
    }
}

#[tokio::test]
async fn tag_routes_count_rename_and_remove_only_the_callers_tags() {
    for app in apps().await {
        let (u, t) = user();
        let (other, other_token) = user();
        let a = create(
            &app,
            &u,
            &t,
            json!({"title": "a", "tags": ["Work", "home"]}),
        )
        .await;
        let b = create(
            &app,
            &u,
            &t,
            json!({"title": "b", "tags": ["work", "Office"]}),
        )
        .await;
        create(&app, &u, &t, json!({"title": "c", "tags": ["home"]})).await;
        let theirs = create(
            &app,
            &other,
            &other_token,
            json!({"title": "x", "tags": ["work"]}),
        )
        .await;

        let want = json!([
            {"name": "home", "count": 2},
            {"name": "Office", "count": 1},
            {"name": "Work", "count": 2},
        ]);
        for path in ["/api/tags".to_owned(), format!("/api/{u}/tags")] {
            let (status, body) = get(&app, &path, &t).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(body, want, "{path} on {}", app.name);
        }
        let (status, _) = get(&app, &format!("/api/{u}/tags"), &other_token).await;
        assert_eq!(status, 403);

        // Renaming onto a tag a task already carries keeps one, in the first one's place.
        let (status, renamed) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tags/WORK"),
            &t,
            json!({"name": "office"}),
        )
        .await;
        assert_eq!(status, 200, "{}", app.name);
        assert_eq!(renamed, json!({"name": "office", "count": 2}));
        let (_, a_now) = get(&app, &format!("/api/{u}/tasks/{}", a["id"]), &t).await;
        assert_eq!(a_now["tags"], json!(["office", "home"]));
        assert_ne!(a_now["updated_at"], a["updated_at"]);
        let (_, b_now) = get(&app, &format!("/api/{u}/tasks/{}", b["id"]), &t).await;
        assert_eq!(b_now["tags"], json!(["office"]));
        // The other user's "work" is untouched, and their list of tags too.
        let (_, x) = get(&app, &format!("/api/tasks/{}", theirs["id"]), &other_token).await;
        assert_eq!(x, theirs);
        let (_, their_tags) = get(&app, "/api/tags", &other_token).await;
        assert_eq!(their_tags, json!([{"name": "work", "count": 1}]));

        let (status, removed) = send(&app, "DELETE", "/api/tags/HOME", &t, Value::Null).await;
        assert_eq!(status, 200);
        assert_eq!(removed, json!({"name": "HOME", "count": 2}));
        let (_, left) = get(&app, "/api/tags", &t).await;
        assert_eq!(left, json!([{"name": "office", "count": 2}]));

        // A tag nobody of this user carries is 404, even one another user has.
        let (status, problem) = send(&app, "DELETE", "/api/tags/home", &t, Value::Null).await;
        assert_eq!(status, 404);
        assert_eq!(problem["detail"], "tag not found");
        let (status, _) = send(&app, "DELETE", "/api/tags/work", &t, Value::Null).await;
        assert_eq!(status, 404);
        let (status, _) = send(
            &app,
            "PATCH",
            "/api/tags/office",
            &other_token,
            json!({"name": "mine"}),
        )
        .await;
        assert_eq!(status, 404);
        // Bad names are 422 naming `name`.
        let long = "x".repeat(51);
        for (path, body) in [
            (format!("/api/tags/{long}"), json!({"name": "ok"})),
            ("/api/tags/office".to_owned(), json!({"name": " "})),
            ("/api/tags/office".to_owned(), json!({"name": 3})),
            ("/api/tags/office".to_owned(), json!({})),
        ] {
            let (status, problem) = send(&app, "PATCH", &path, &t, body.clone()).await;
            assert_eq!(status, 422, "{path} {body}");
            assert_eq!(fields(&problem), ["name"], "{path} {body}");
        }
        let (_, still) = get(&app, "/api/tags", &t).await;
        assert_eq!(still, json!([{"name": "office", "count": 2}]));
    }
}

#[tokio::test]
async fn a_recurring_task_completed_over_http_comes_back_as_its_next_occurrence() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(
            &app,
            &u,
            &t,
            json!({"title": "Gym", "due_date": "2030-01-31T18:00:00Z", "tags": ["health"],
                   "recurrence": "rrule:freq=monthly;bymonthday=31;count=2"}),
        )
        .await;
        assert_eq!(
            task["recurrence"], "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=2",
            "{}",
            app.name
        );
        let (status, done) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/{}/complete", task["id"]),
            &t,
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(done["completed"], true);
        let (_, pending) = get(&app, &format!("/api/{u}/tasks?status=pending"), &t).await;
        let pending = pending.as_array().unwrap().clone();
        assert_eq!(pending.len(), 1, "{}", app.name);
        assert_eq!(pending[0]["title"], "Gym");
        assert_eq!(pending[0]["due_date"], "2030-03-31T18:00:00Z");
        assert_eq!(pending[0]["tags"], json!(["health"]));
        assert_eq!(
            pending[0]["recurrence"],
            "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=1"
        );
        // Stopping the series: null clears the rule.
        let path = format!("/api/{u}/tasks/{}", pending[0]["id"]);
        let (status, stopped) = send(&app, "PATCH", &path, &t, json!({"recurrence": null})).await;
        assert_eq!(status, 200);
        assert_eq!(stopped["recurrence"], Value::Null);

        let bad = [
            json!({"title": "x", "recurrence": "FREQ=HOURLY", "due_date": "2030-01-01"}),
            json!({"title": "x", "recurrence": "FREQ=DAILY;COUNT=0", "due_date": "2030-01-01"}),
            json!({"title": "x", "recurrence": 7, "due_date": "2030-01-01"}),
            json!({"title": "x", "recurrence": "FREQ=DAILY"}),
        ];
        for body in bad {
            let (status, problem) =
                send(&app, "POST", &format!("/api/{u}/tasks"), &t, body.clone()).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(fields(&problem), ["recurrence"], "{body}");
        }
        // A rule on a task without a due date, or a due date cleared under a rule: 422.
        let plain = create(&app, &u, &t, json!({"title": "plain"})).await;
        let plain_path = format!("/api/{u}/tasks/{}", plain["id"]);
        let (status, problem) = send(
            &app,
            "PATCH",
            &plain_path,
            &t,
            json!({"recurrence": "FREQ=DAILY"}),
        )
        .await;
        assert_eq!(status, 422, "{}", app.name);
        assert_eq!(fields(&problem), ["recurrence"]);
        let (_, unchanged) = get(&app, &plain_path, &t).await;
        assert_eq!(unchanged, plain);
    }
}

#[tokio::test]
async fn tag_routes_answer_under_tasks_tags_too_where_frontends_autocomplete() {
    for app in apps().await {
        let (u, t) = user();
        let (_, other_token) = user();
        create(
            &app,
            &u,
            &t,
            json!({"title": "a", "tags": ["Work", "home"]}),
        )
        .await;
        create(&app, &u, &t, json!({"title": "b", "tags": ["work"]})).await;
        let want = json!([{"name": "home", "count": 1}, {"name": "Work", "count": 2}]);
        for path in ["/api/tasks/tags".to_owned(), format!("/api/{u}/tasks/tags")] {
            let (status, body) = get(&app, &path, &t).await;
            assert_eq!(status, 200, "{path} on {}", app.name);
            assert_eq!(body, want, "{path} on {}", app.name);
        }
        // Another user's path is refused; their own view is empty.
        let (status, _) = get(&app, &format!("/api/{u}/tasks/tags"), &other_token).await;
        assert_eq!(status, 403, "{}", app.name);
        let (_, theirs) = get(&app, "/api/tasks/tags", &other_token).await;
        assert_eq!(theirs, json!([]), "{}", app.name);

        let (status, renamed) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/tags/WORK"),
            &t,
            json!({"name": "Office"}),
        )
        .await;
        assert_eq!(status, 200, "{}", app.name);
        assert_eq!(renamed, json!({"name": "Office", "count": 2}));
        let (status, removed) = send(&app, "DELETE", "/api/tasks/tags/HOME", &t, Value::Null).await;
        assert_eq!(status, 200, "{}", app.name);
        assert_eq!(removed, json!({"name": "HOME", "count": 1}));
        let (_, left) = get(&app, "/api/tasks/tags", &t).await;
        assert_eq!(
            left,
            json!([{"name": "Office", "count": 2}]),
            "{}",
            app.name
        );
        // A task id is still a task id.
        let (status, _) = get(&app, "/api/tasks/999999", &t).await;
        assert_eq!(status, 404, "{}", app.name);
    }
}

#[tokio::test]
async fn lists_accept_the_fastapi_parameter_names_and_status_aliases() {
    for app in apps().await {
        let (u, t) = user();
        create(
            &app,
            &u,
            &t,
            json!({"title": "alpha", "due_date": "2020-01-01"}),
        )
        .await;
        let beta = create(&app, &u, &t, json!({"title": "beta"})).await;
        create(
            &app,
            &u,
            &t,
            json!({"title": "gamma", "due_date": "2090-01-01"}),
        )
        .await;
        let (status, _) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/{}/complete", beta["id"]),
            &t,
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
        let base = format!("/api/{u}/tasks");
        let cases = [
            ("search=ALP", vec!["alpha"]),
            ("q=gam&search=alp", vec!["gamma"]),
            (
                "sort_by=title&sort_order=asc",
                vec!["alpha", "beta", "gamma"],
            ),
            (
                "sort_by=created_at&sort_order=desc",
                vec!["gamma", "beta", "alpha"],
            ),
            (
                "sort_by=due_date&sort_order=asc&status=active",
                vec!["alpha", "gamma"],
            ),
            (
                "sort=title&sort_by=created_at&order=asc",
                vec!["alpha", "beta", "gamma"],
            ),
            (
                "sort=title&order=asc&status=incomplete",
                vec!["alpha", "gamma"],
            ),
            ("sort=title&order=asc&status=OPEN", vec!["alpha", "gamma"]),
            ("status=done", vec!["beta"]),
            ("status=Complete", vec!["beta"]),
            ("status=overdue", vec!["alpha"]),
        ];
        for (query, want) in cases {
            let (status, body) = get(&app, &format!("{base}?{query}"), &t).await;
            assert_eq!(status, 200, "{query} on {}: {body}", app.name);
            assert_eq!(titles(&body), want, "{query} on {}", app.name);
        }
        for (query, field) in [
            ("sort_by=nope", "sort_by"),
            ("sort_order=sideways", "sort_order"),
            ("status=finished", "status"),
        ] {
            let (status, body) = get(&app, &format!("{base}?{query}"), &t).await;
            assert_eq!(status, 422, "{query} on {}", app.name);
            assert_eq!(fields(&body), [field], "{query} on {}", app.name);
        }
        // Paging keeps the aliases: the next page's link carries them.
        let resp = app
            .client
            .get(format!("{base}?sort_by=title&sort_order=asc&limit=1"))
            .header("authorization", bearer(&t))
            .send()
            .await;
        let link = resp
            .0
            .headers()
            .get("link")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            link.contains("sort_by=title") && link.contains("sort_order=asc"),
            "{link}"
        );
        let next = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned();
        let (_, second) = get(&app, &next, &t).await;
        assert_eq!(titles(&second), ["beta"], "{}", app.name);
    }
}

#[tokio::test]
async fn bodies_in_the_spellings_real_frontends_send_are_read_and_answers_carry_a_status() {
    for app in apps().await {
        let (u, t) = user();
        let base = format!("/api/{u}/tasks");
        let (status, task) = send(
            &app,
            "POST",
            &base,
            &t,
            json!({"title": "camel", "dueDate": "2030-01-31", "remindAt": "2030-01-30T09:00:00Z",
                   "priority": "High", "category": "Work"}),
        )
        .await;
        assert_eq!(status, 201, "{} {task}", app.name);
        assert_eq!(task["due_date"], "2030-01-31T00:00:00Z");
        assert_eq!(task["remind_at"], "2030-01-30T09:00:00Z");
        assert_eq!(task["priority"], "high");
        assert_eq!(task["tags"], json!(["Work"]));
        assert_eq!(task["status"], "pending");
        assert_eq!(task["completed"], false);
        let id = task["id"].as_i64().unwrap();

        // The API's own spelling wins when both are sent.
        let (_, both) = send(
            &app,
            "POST",
            &base,
            &t,
            json!({"title": "both", "due_date": "2030-01-01", "dueDate": "2031-01-01",
                   "tags": ["a"], "category": "b"}),
        )
        .await;
        assert_eq!(both["due_date"], "2030-01-01T00:00:00Z", "{}", app.name);
        assert_eq!(both["tags"], json!(["a"]), "{}", app.name);

        for (method, body, completed) in [
            ("PATCH", json!({"status": "completed"}), true),
            ("PATCH", json!({"status": "Active"}), false),
            ("PUT", json!({"title": "camel", "status": "done"}), true),
            (
                "PATCH",
                json!({"status": "done", "completed": false}),
                false,
            ),
        ] {
            let (status, updated) =
                send(&app, method, &format!("{base}/{id}"), &t, body.clone()).await;
            assert_eq!(status, 200, "{method} {body} on {}", app.name);
            assert_eq!(
                updated["completed"], completed,
                "{method} {body} on {}",
                app.name
            );
            let word = if completed { "completed" } else { "pending" };
            assert_eq!(updated["status"], word, "{method} {body} on {}", app.name);
        }
        let (status, done) = send(
            &app,
            "PATCH",
            &format!("{base}/{id}/complete"),
            &t,
            json!({"status": "completed"}),
        )
        .await;
        assert_eq!(status, 200, "{}", app.name);
        assert_eq!(done["status"], "completed");
        let (_, listed) = get(&app, &format!("{base}?status=completed"), &t).await;
        assert_eq!(listed[0]["status"], "completed", "{}", app.name);
        let (_, one) = get(&app, &format!("{base}/{id}"), &t).await;
        assert_eq!(one["status"], "completed", "{}", app.name);

        for (body, field) in [
            (json!({"status": "finished"}), "status"),
            (json!({"status": 1}), "status"),
            (json!({"category": 5}), "category"),
            (json!({"dueDate": "soon"}), "due_date"),
        ] {
            let (status, problem) =
                send(&app, "PATCH", &format!("{base}/{id}"), &t, body.clone()).await;
            assert_eq!(status, 422, "{body} on {}", app.name);
            assert_eq!(fields(&problem), [field], "{body} on {}", app.name);
        }
        let (_, unchanged) = get(&app, &format!("{base}/{id}"), &t).await;
        assert_eq!(
            unchanged["due_date"], "2030-01-31T00:00:00Z",
            "{}",
            app.name
        );
        assert_eq!(unchanged["tags"], json!(["Work"]), "{}", app.name);
    }
}

#[tokio::test]
async fn stats_count_the_users_tasks_for_a_dashboard() {
    for app in apps().await {
        let (u, t) = user();
        let (other, other_token) = user();
        create(
            &app,
            &u,
            &t,
            json!({"title": "late", "priority": "high", "due_date": "2020-01-01"}),
        )
        .await;
        let done = create(&app, &u, &t, json!({"title": "done", "priority": "low"})).await;
        create(&app, &u, &t, json!({"title": "plain"})).await;
        create(
            &app,
            &u,
            &t,
            json!({"title": "future", "due_date": "2090-01-01"}),
        )
        .await;
        let (status, _) = send(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/{}/complete", done["id"]),
            &t,
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
        create(&app, &other, &other_token, json!({"title": "theirs"})).await;
        let want = json!({"total": 4, "completed": 1, "pending": 3, "overdue": 1,
                          "by_priority": {"low": 1, "medium": 2, "high": 1}});
        for path in [
            "/api/tasks/stats".to_owned(),
            format!("/api/{u}/stats"),
            format!("/api/{u}/tasks/stats"),
        ] {
            let (status, body) = get(&app, &path, &t).await;
            assert_eq!(status, 200, "{path} on {}", app.name);
            assert_eq!(body, want, "{path} on {}", app.name);
        }
        let (status, _) = get(&app, &format!("/api/{u}/stats"), &other_token).await;
        assert_eq!(status, 403, "{}", app.name);
        let (_, theirs) = get(&app, "/api/tasks/stats", &other_token).await;
        assert_eq!(theirs["total"], 1, "{}", app.name);
    }
}

#[tokio::test]
async fn skip_and_offset_page_in_order_with_category_and_tags_as_tag_filters() {
    for app in apps().await {
        let (u, t) = user();
        for i in 0..5 {
            let tags = if i % 2 == 0 {
                json!(["Work"])
            } else {
                json!(["home", "x"])
            };
            create(
                &app,
                &u,
                &t,
                json!({"title": format!("t{i}"), "tags": tags}),
            )
            .await;
        }
        let mut walked = Vec::new();
        for (name, at) in [("skip", 0), ("offset", 2), ("skip", 4)] {
            let (status, body) = get(
                &app,
                &format!("/api/{u}/tasks?sort_by=title&sort_order=asc&limit=2&{name}={at}"),
                &t,
            )
            .await;
            assert_eq!(status, 200, "{}: {body}", app.name);
            walked.extend(titles(&body));
        }
        assert_eq!(walked, ["t0", "t1", "t2", "t3", "t4"], "{}", app.name);
        let (_, past) = get(&app, &format!("/api/{u}/tasks?skip=9"), &t).await;
        assert_eq!(past, json!([]), "{}", app.name);

        // `offset` wins over `skip`; bad values name the parameter the client sent.
        let (_, both) = get(&app, "/api/tasks?sort=title&order=asc&offset=4&skip=0", &t).await;
        assert_eq!(titles(&both), ["t4"], "{}", app.name);
        for (query, field) in [
            ("skip=-1", "skip"),
            ("offset=ten", "offset"),
            ("skip=10001", "skip"),
            ("category=%01", "category"),
        ] {
            let (status, body) = get(&app, &format!("/api/{u}/tasks?{query}"), &t).await;
            assert_eq!(status, 422, "{}: {query}", app.name);
            assert_eq!(fields(&body), [field], "{}: {query}: {body}", app.name);
        }
        // A cursor and an offset together are refused.
        let resp = app
            .client
            .get(format!("/api/{u}/tasks?limit=1"))
            .header("authorization", bearer(&t))
            .send()
            .await;
        let cursor = crate::helpers::header(&resp, "x-next-cursor").unwrap();
        let (status, body) = get(&app, &format!("/api/{u}/tasks?skip=1&cursor={cursor}"), &t).await;
        assert_eq!(
            (status, fields(&body)),
            (422, vec!["offset".to_owned()]),
            "{}",
            app.name
        );

        // `category` is one tag, `tags` a comma-separated list; with `tag`, all must match.
        let (_, work) = get(
            &app,
            &format!("/api/{u}/tasks?category=work&sort=title&order=asc"),
            &t,
        )
        .await;
        assert_eq!(titles(&work), ["t0", "t2", "t4"], "{}", app.name);
        let (_, home) = get(
            &app,
            &format!("/api/{u}/tasks?tags=HOME,x&sort=title&order=asc"),
            &t,
        )
        .await;
        assert_eq!(titles(&home), ["t1", "t3"], "{}", app.name);
        let (_, none) = get(&app, &format!("/api/{u}/tasks?tags=home&category=work"), &t).await;
        assert_eq!(none, json!([]), "{}", app.name);
    }
}

#[tokio::test]
async fn fastapi_form_logins_with_username_and_password_get_an_access_token() {
    for app in apps().await {
        let (email, _) = crate::helpers::register(&app).await;
        let form = |body: String| {
            app.client
                .post("/api/auth/login")
                .content_type("application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        let enc = |s: &str| s.replace('@', "%40").replace(' ', "+");
        let resp = form(format!(
            "grant_type=password&username={}&password={}&scope=",
            enc(&email),
            enc("correct horse")
        ))
        .await;
        assert_eq!(resp.0.status(), 200, "{}", app.name);
        let body = json(resp).await;
        assert_eq!(body["token_type"], "Bearer");
        let token = body["access_token"].as_str().unwrap().to_owned();
        let (status, me) = get(&app, "/api/auth/me", &token).await;
        assert_eq!((status, me["email"].as_str()), (200, Some(email.as_str())));

        // `/api/auth/token`, where FastAPI's tutorial puts it, is the same sign-in.
        let resp = app
            .client
            .post("/api/auth/token")
            .content_type("application/x-www-form-urlencoded")
            .body(format!("username={}&password=correct+horse", enc(&email)))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200, "{}", app.name);
        assert!(json(resp).await["access_token"].is_string());

        // JSON with `username` signs in too.
        let resp = app
            .client
            .post("/api/auth/login")
            .body_json(&json!({"username": email, "password": "correct horse"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200, "{}", app.name);

        let resp = form(format!("username={}&password=wrong+horse", enc(&email))).await;
        assert_eq!(resp.0.status(), 401, "{}", app.name);
        let resp = form(format!(
            "grant_type=client_credentials&username={}&password=x",
            enc(&email)
        ))
        .await;
        assert_eq!(resp.0.status(), 422);
        assert_eq!(fields(&json(resp).await), ["grant_type"]);
        let resp = form("password=x".to_owned()).await;
        assert_eq!(resp.0.status(), 422);
        assert_eq!(fields(&json(resp).await), ["username"]);
        // Other routes take JSON only.
        let resp = app
            .client
            .post("/api/auth/register")
            .content_type("application/x-www-form-urlencoded")
            .body(format!("email={}&password=x", enc(&email)))
            .send()
            .await;
        assert_eq!(resp.0.status(), 415, "{}", app.name);
    }
}

#[tokio::test]
async fn an_until_with_a_leap_second_or_a_year_outside_1_to_9999_is_a_422_on_recurrence() {
    for app in apps().await {
        let (u, t) = user();
        for rule in [
            "FREQ=DAILY;UNTIL=20240110T235960Z",
            "FREQ=DAILY;UNTIL=00000101T000000Z",
            "FREQ=DAILY;UNTIL=00000101",
        ] {
            let body =
                json!({"title": "x", "due_date": "2024-01-01T09:00:00Z", "recurrence": rule});
            let (status, problem) = send(&app, "POST", &format!("/api/{u}/tasks"), &t, body).await;
            assert_eq!(status, 422, "{rule} on {}", app.name);
            assert_eq!(fields(&problem), ["recurrence"], "{rule}");
            assert!(
                problem["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("UNTIL"),
                "{problem}"
            );
        }
        let (_, list) = get(&app, &format!("/api/{u}/tasks"), &t).await;
        assert_eq!(list, json!([]), "{}", app.name);
    }
}

#[tokio::test]
async fn a_tag_with_an_invisible_or_format_character_is_a_422_on_tags_naming_why() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(&app, &u, &t, json!({"title": "x", "tags": ["work"]})).await;
        let path = format!("/api/{u}/tasks/{}", task["id"]);
        for name in [
            "\u{200b}",
            "\u{feff}",
            "\u{202e}gpj.exe",
            "\u{3164}",
            "soft\u{00ad}",
        ] {
            for (method, path, body) in [
                (
                    "POST",
                    format!("/api/{u}/tasks"),
                    json!({"title": "x", "tags": [name]}),
                ),
                ("PATCH", path.clone(), json!({"tags": ["ok", name]})),
                ("PUT", path.clone(), json!({"title": "x", "tags": [name]})),
            ] {
                let (status, problem) = send(&app, method, &path, &t, body.clone()).await;
                assert_eq!(status, 422, "{method} {body} on {}", app.name);
                assert_eq!(fields(&problem), ["tags"], "{method} {body}");
                let why = problem["errors"][0]["message"].as_str().unwrap();
                assert!(why.contains("visible"), "{why}");
            }
            // Nor can a tag be renamed to it.
            let (status, problem) =
                send(&app, "PATCH", "/api/tags/work", &t, json!({"name": name})).await;
            assert_eq!(status, 422, "rename to {name:?} on {}", app.name);
            assert_eq!(fields(&problem), ["name"]);
        }
        let (_, unchanged) = get(&app, &path, &t).await;
        assert_eq!(unchanged["tags"], json!(["work"]), "{}", app.name);
        let (_, list) = get(&app, &format!("/api/{u}/tasks"), &t).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{}", app.name);
    }
}

#[tokio::test]
async fn an_empty_string_in_an_optional_field_means_no_value_on_create_put_and_patch() {
    for app in apps().await {
        let (u, t) = user();
        let base = format!("/api/{u}/tasks");
        let cleared = |task: &Value| {
            for f in ["description", "due_date", "remind_at", "recurrence"] {
                assert_eq!(task[f], Value::Null, "{}: {f} in {task}", app.name);
            }
        };
        for body in [
            json!({"title": "a", "description": "", "due_date": "", "remind_at": "", "recurrence": ""}),
            json!({"title": "b", "description": "", "dueDate": "", "remindAt": "", "recurrence": ""}),
        ] {
            let (status, task) = send(&app, "POST", &base, &t, body.clone()).await;
            assert_eq!(status, 201, "{} {body}: {task}", app.name);
            cleared(&task);
        }
        let full = json!({"title": "c", "description": "d", "due_date": "2030-01-31",
                          "remind_at": "2030-01-30T09:00:00Z", "recurrence": "FREQ=DAILY"});
        for (method, body) in [
            (
                "PATCH",
                json!({"description": "", "dueDate": "", "remindAt": "", "recurrence": ""}),
            ),
            (
                "PUT",
                json!({"title": "c", "description": "", "due_date": "", "remind_at": "",
                       "recurrence": ""}),
            ),
        ] {
            let (status, task) = send(&app, "POST", &base, &t, full.clone()).await;
            assert_eq!(status, 201, "{}: {task}", app.name);
            assert_eq!(task["recurrence"], "FREQ=DAILY");
            let path = format!("{base}/{}", task["id"]);
            let (status, task) = send(&app, method, &path, &t, body.clone()).await;
            assert_eq!(status, 200, "{} {method} {body}: {task}", app.name);
            cleared(&task);
            let (_, stored) = get(&app, &path, &t).await;
            cleared(&stored);
        }
        // A required or non-text field is not made optional by it.
        for body in [json!({"title": ""}), json!({"title": "x", "priority": ""})] {
            let (status, problem) = send(&app, "POST", &base, &t, body.clone()).await;
            assert_eq!(status, 422, "{} {body}: {problem}", app.name);
        }
    }
}
