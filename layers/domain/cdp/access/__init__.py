"""Settings of the deployment: its API keys, the console's users and the connector sources, as an administrator
(scope `settings:admin`, no org scope) manages them through the operations API instead of editing secrets and files.

- API keys live in the ApiKeys secret (`SecretsManagerKeyStore`: read, change, write back, checked against
  concurrent writers); a key is named everywhere by its fingerprint (`key_id`), never by itself, and shown once.
- Console users live in the stack's Cognito user pool (`CognitoUserDirectory`) or, in the local runtime, in the
  users file `cdp serve` signs them in from (`UsersFileDirectory`): one port, the adapter chosen by configuration
  (`cdp.settings.ConsoleUserDirectory`).
- Sources are listed from the sources secret with what they accept, never with their secrets.
"""
