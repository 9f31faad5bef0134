// MariaDB Connector/C (Debian's libmariadb-dev), wrapped by the MySQLStore target only.
#include <mysql.h>
#include <errmsg.h>
