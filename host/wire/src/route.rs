//! Path matching for the admin dialects: one matchit router in which each namespace (a dialect's
//! name) has its own templates. It knows nothing of methods or plugins; the route table of the host
//! keeps those in the values.

/// Templates of several namespaces in one router: `/{namespace}{template}` is the key.
pub struct Router<T> {
    inner: matchit::Router<T>,
}

/// A path that matched a template.
#[derive(Debug)]
pub struct Matched<'a, T> {
    pub value: &'a T,
    /// The template's parameters in order, percent-decoded; an error when one is not UTF-8 once
    /// decoded, which makes the path unknown.
    pub params: Result<Vec<(String, String)>, NotUtf8>,
}

/// A path parameter whose percent-decoded bytes are not UTF-8.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("path parameter `{0}` is not UTF-8 once percent-decoded")]
pub struct NotUtf8(pub String);

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router { inner: matchit::Router::new() }
    }
}

impl<T> Router<T> {
    /// Adds `template` (`/user/{name}`) to `namespace`; matchit refuses a template that conflicts
    /// with one already there.
    pub fn insert(&mut self, namespace: &str, template: &str, value: T) -> Result<(), matchit::InsertError> {
        self.inner.insert(keyed(namespace, template), value)
    }

    /// Resolves `path` (still percent-encoded) within `namespace`.
    pub fn at(&self, namespace: &str, path: &str) -> Option<Matched<'_, T>> {
        let key = keyed(namespace, path);
        let matched = self.inner.at(&key).ok()?;
        let params = matched
            .params
            .iter()
            .map(|(name, raw)| match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(value) => Ok((name.to_owned(), value.into_owned())),
                Err(_) => Err(NotUtf8(name.to_owned())),
            })
            .collect();
        Some(Matched { value: matched.value, params })
    }
}

fn keyed(namespace: &str, path: &str) -> String {
    format!("/{namespace}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let mut router = Router::default();
        router.insert("admin_rest", "/user/{name}", "user").unwrap();
        router.insert("admin_rest", "/users/count", "count").unwrap();
        router.insert("api", "/register", "register").unwrap();
        router
    }

    #[test]
    fn namespaces_are_apart() {
        let router = router();
        assert_eq!(router.at("admin_rest", "/users/count").map(|found| *found.value), Some("count"));
        assert!(router.at("api", "/users/count").is_none());
        assert!(router.at("admin_rest", "/register").is_none());
        assert!(router.at("api", "/register").is_some());
    }

    #[test]
    fn params_are_percent_decoded_utf8() {
        let router = router();
        let found = router.at("admin_rest", "/user/al%20ice%C3%A9").unwrap();
        assert_eq!(found.params, Ok(vec![("name".to_owned(), "al iceé".to_owned())]));
        let found = router.at("admin_rest", "/user/%FF").unwrap();
        assert_eq!(found.params, Err(NotUtf8("name".to_owned())));
        assert!(router.at("admin_rest", "/user/a/b").is_none());
    }
}
