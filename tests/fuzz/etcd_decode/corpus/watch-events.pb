
Z+)
!/secretshim/nodes/node-1/tasks/t1*{}Z+'
#/secretshim/nodes/node-1/secrets/db