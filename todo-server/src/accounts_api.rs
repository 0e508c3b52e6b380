//! `POST /api/auth/register` and `POST /api/auth/login`: built-in accounts for teams without
//! Better Auth. Tokens are HS256, signed with the server's secret, shaped like Better Auth's.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use serde_json::{Map, Value};
use todo_core::{Account, ValidationError};

use crate::AppState;
use crate::payload::{JsonBody, JsonOrFormBody};
use crate::problem::ApiError;
use crate::ratelimit::{Admitted, RateFields};

/// The address limit on sign-in attempts, checked before the body is read: a client over it costs
/// no more than its request head. Holds the admitted attempt, for the account limits once the
/// body names the account (`None` when the limits are off).
pub struct Gate(Option<Admitted>);

impl<'a> poem::FromRequest<'a> for Gate {
    async fn from_request(req: &'a Request, _body: &mut poem::RequestBody) -> poem::Result<Self> {
        let Some(state) = req.data::<Arc<AppState>>() else {
            return Ok(Self(None));
        };
        let Some(limits) = &state.auth_limits else {
            return Ok(Self(None));
        };
        let client = state.client_address.of(req);
        limits
            .admit(client)
            .map(|a| Self(Some(a)))
            .map_err(|t| throttled(t).into_poem())
    }
}

/// The 429 for an attempt over a limit.
fn throttled(t: crate::ratelimit::Throttled) -> ApiError {
    ApiError::too_many_requests(
        "too many attempts; retry after the time in Retry-After",
        t.retry_after,
        Some(t.fields),
    )
}

/// API groups in the contract.
#[derive(Tags)]
pub enum AuthTags {
    /// Built-in accounts (when enabled).
    Auth,
}

/// The registration body.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Register")]
pub struct RegisterDoc {
    /// Email (normalised: trimmed, lowercased).
    pub email: String,
    /// Password, 8 to 128 characters.
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: String,
    /// Display name.
    pub name: Option<String>,
    /// Display name, under the name FastAPI sign-up forms use (`name` wins when both are sent).
    pub full_name: Option<String>,
}

/// The login body.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Login")]
pub struct LoginDoc {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The sign-in form of FastAPI's `OAuth2PasswordRequestForm`: `username` is the account's
/// email. `grant_type` (when sent, `password`), `scope`, `client_id` and `client_secret` are
/// accepted and not used.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LoginForm")]
pub struct LoginFormDoc {
    /// The account's email.
    pub username: String,
    /// Password.
    pub password: String,
    /// `password`, when sent.
    pub grant_type: Option<String>,
    /// Not used.
    pub scope: Option<String>,
    /// Not used.
    pub client_id: Option<String>,
    /// Not used.
    pub client_secret: Option<String>,
}

/// A user as the auth routes return it.
#[derive(Debug, Clone, Object)]
#[oai(rename = "User")]
pub struct UserDto {
    /// The user id (the `sub` of the token and the `{user_id}` of task routes).
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name, or null.
    #[oai(nullable)]
    pub name: Option<String>,
}

/// The caller, as their token names them.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Me")]
pub struct MeDto {
    /// The user id (the `sub` of the token and the `{user_id}` of task routes).
    pub id: String,
    /// Email, when the token carries one.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Display name, when the token carries one.
    #[oai(nullable)]
    pub name: Option<String>,
}

/// A token and who it is for.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TokenResponse")]
pub struct TokenDto {
    /// The bearer token (HS256 JWT).
    pub token: String,
    /// The same token, under the name FastAPI's OAuth2 answers use.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The account.
    pub user: UserDto,
}

/// A successful registration or login. The answer carries a token, so it is never cached
/// (`Cache-Control: no-store`); `RateLimit-Policy` and `RateLimit` describe the attempt limits
/// when they are on.
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// Registered.
    #[oai(status = 201)]
    Created(
        Json<TokenDto>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "RateLimit-Policy")] Option<String>,
        #[oai(header = "RateLimit")] Option<String>,
    ),
    /// Logged in.
    #[oai(status = 200)]
    Ok(
        Json<TokenDto>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "RateLimit-Policy")] Option<String>,
        #[oai(header = "RateLimit")] Option<String>,
    ),
}

/// `Cache-Control` of every answer that carries a token.
const NO_STORE: &str = "no-store";

fn string_field(map: &Map<String, Value>, name: &str, errors: &mut ValidationError) -> String {
    match map.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => {
            errors
                .errors
                .extend(ValidationError::field(name, "is required").errors);
            String::new()
        }
        Some(_) => {
            errors
                .errors
                .extend(ValidationError::field(name, "must be a string").errors);
            String::new()
        }
    }
}

/// The auth routes.
pub struct AuthApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

impl AuthApi {
    fn token_for(&self, account: Account) -> Result<TokenDto, ApiError> {
        let issuer = &self.state.issuer;
        let token = issuer
            .issue(&account.id, Some(&account.email), account.name.as_deref())
            .map_err(ApiError::from)?;
        Ok(TokenDto {
            access_token: token.clone(),
            token,
            token_type: "Bearer".to_owned(),
            expires_in: issuer.lifetime().as_secs(),
            user: UserDto {
                id: account.id.as_str().to_owned(),
                email: account.email,
                name: account.name,
            },
        })
    }

    /// Counts an admitted attempt on `email`; 429 when over a limit.
    fn count_attempt(&self, gate: Gate, email: &str) -> Result<Option<RateFields>, ApiError> {
        let (Some(limits), Some(admitted)) = (&self.state.auth_limits, gate.0) else {
            return Ok(None);
        };
        limits
            .attempt(admitted, &email.trim().to_lowercase())
            .map(Some)
            .map_err(throttled)
    }

    /// Registers from a body's `email`, `password` and `name` (or `full_name`).
    async fn register_account(
        &self,
        gate: Gate,
        fields: &Map<String, Value>,
    ) -> Result<TokenResponse, ApiError> {
        let accounts = self.accounts()?;
        let mut errors = ValidationError::default();
        let email = string_field(fields, "email", &mut errors);
        let password = string_field(fields, "password", &mut errors);
        let mut name = None;
        for field in ["full_name", "name"] {
            match fields.get(field) {
                Some(Value::String(s)) => name = Some(s.clone()),
                Some(Value::Null) | None => {}
                Some(_) => errors
                    .errors
                    .extend(ValidationError::field(field, "must be a string").errors),
            }
        }
        errors.into_result().map_err(|e| ApiError::validation(&e))?;
        let rate = self.count_attempt(gate, &email)?;
        let account = accounts
            .register(&email, &password, name.as_deref())
            .await?;
        let (policy, limit) = RateFields::header_values(rate);
        Ok(TokenResponse::Created(
            Json(self.token_for(account)?),
            NO_STORE.to_owned(),
            policy,
            limit,
        ))
    }

    fn accounts(&self) -> Result<&Arc<dyn todo_core::AccountStore>, ApiError> {
        self.state.accounts.as_ref().ok_or_else(|| {
            ApiError::NotFound(crate::problem::problem(
                poem::http::StatusCode::NOT_FOUND,
                "built-in accounts are disabled on this server",
            ))
        })
    }
}

#[OpenApi(tag = "AuthTags::Auth")]
impl AuthApi {
    /// Register a built-in account and get a token. A registered email is 409.
    #[oai(path = "/auth/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        gate: Gate,
        body: JsonBody<RegisterDoc>,
    ) -> Result<TokenResponse, ApiError> {
        self.register_account(gate, &body.fields).await
    }

    /// The same as `/auth/register`, where FastAPI backends put their sign-up.
    #[oai(path = "/auth/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        gate: Gate,
        body: JsonBody<RegisterDoc>,
    ) -> Result<TokenResponse, ApiError> {
        self.register_account(gate, &body.fields).await
    }

    /// Who the token is for: its user id, and the email and name it carries (null when it
    /// carries none). Any accepted token, built-in or Better Auth's.
    #[oai(path = "/auth/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: crate::api::Auth) -> Result<Json<MeDto>, ApiError> {
        let who = auth.0;
        Ok(Json(MeDto {
            id: who.user_id().as_str().to_owned(),
            email: who.email().map(str::to_owned),
            name: who.name().map(str::to_owned),
        }))
    }

    /// Log in to a built-in account. An unknown email and a wrong password get the same 401.
    /// The body is JSON (`email`, `password`) or, as FastAPI's `OAuth2PasswordRequestForm`
    /// sends it, a form (`username` being the email, `password`); `username` is read in JSON
    /// too when there is no `email`.
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        gate: Gate,
        body: JsonOrFormBody<LoginDoc, LoginFormDoc>,
    ) -> Result<TokenResponse, ApiError> {
        self.sign_in(gate, body).await
    }

    /// `/api/auth/login` where FastAPI's OAuth2 tutorial puts its token route (`tokenUrl`):
    /// the same form or JSON, the same answer.
    #[oai(path = "/auth/token", method = "post", operation_id = "token")]
    async fn token(
        &self,
        gate: Gate,
        body: JsonOrFormBody<LoginDoc, LoginFormDoc>,
    ) -> Result<TokenResponse, ApiError> {
        self.sign_in(gate, body).await
    }
}

impl AuthApi {
    /// A login: JSON `email` (or `username`) and `password`, or the form.
    async fn sign_in(
        &self,
        gate: Gate,
        body: JsonOrFormBody<LoginDoc, LoginFormDoc>,
    ) -> Result<TokenResponse, ApiError> {
        let accounts = self.accounts()?;
        let mut errors = ValidationError::default();
        let name = if body.form
            || (body.fields.contains_key("username") && !body.fields.contains_key("email"))
        {
            "username"
        } else {
            "email"
        };
        let email = string_field(&body.fields, name, &mut errors);
        match body.fields.get("grant_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) if g.is_empty() || g == "password" => {}
            Some(_) => errors
                .errors
                .extend(ValidationError::field("grant_type", "must be password").errors),
        }
        let password = string_field(&body.fields, "password", &mut errors);
        errors.into_result().map_err(|e| ApiError::validation(&e))?;
        let rate = self.count_attempt(gate, &email)?;
        let account = accounts.login(&email, &password).await?;
        let (policy, limit) = RateFields::header_values(rate);
        Ok(TokenResponse::Ok(
            Json(self.token_for(account)?),
            NO_STORE.to_owned(),
            policy,
            limit,
        ))
    }
}
