"""Login configuration of the FAB auth manager (apache-airflow-providers-fab).

Every Airflow container reads this file through ``AIRFLOW__FAB__CONFIG_FILE`` (set by
``ctflow.deploy.topology.production_env``), so it is committed here rather than generated
into each container's ``AIRFLOW_HOME``, where every container would get its own copy.

Users and passwords live in the Airflow database (``AUTH_DB``); the first admin is created
by the ``init`` service from ``.env``. To sign in through an identity provider instead, set
``AUTH_TYPE = AUTH_OAUTH`` (or ``AUTH_LDAP``) and its settings here; see the FAB provider's
"webserver_config.py" documentation. Secrets for it belong in the environment, read with
``os.environ``, never in this file.
"""

from __future__ import annotations

from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
# Accounts are created by an admin (UI, or `airflow users create`), never by self-registration.
AUTH_USER_REGISTRATION = False
# CSRF protection of the FAB forms (login, user management); tokens valid for the session.
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
